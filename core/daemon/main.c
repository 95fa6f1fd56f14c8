/*
 * main.c - cairnd: command line, config, signals.
 *
 * SIGINT, SIGTERM and SIGHUP are blocked before any thread exists, so
 * every thread inherits the mask and only the main thread, in sigwait(),
 * ever sees them: no handler runs concurrently with the runtime.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairnd.h"

#ifndef CAIRN_DEFAULT_PLUGIN_DIR
#define CAIRN_DEFAULT_PLUGIN_DIR "/usr/lib/cairn/plugins"
#endif

static void
main_usage(FILE *f)
{
    fprintf(f,
            "usage: cairnd -c FILE [--check] [-P DIR]\n"
            "       cairnd --describe PLUGIN.so\n"
            "       cairnd --help-config | --help | --version\n"
            "\n"
            "Runs the cairn edge runtime in the foreground: loads the "
            "plugins named in\nFILE, logs to stderr, stops cleanly on "
            "SIGINT or SIGTERM.\n"
            "\n"
            "  -c, --config FILE    configuration file (YAML)\n"
            "      --check          validate FILE and the plugins' config, "
            "then exit\n"
            "  -P, --plugin-dir DIR where plugin file names are looked up\n"
            "                       (default: runtime.plugin_dir, else "
            "$CAIRN_PLUGIN_DIR,\n"
            "                       else %s)\n"
            "      --describe SO    print a plugin's description and config "
            "keys\n"
            "      --help-config    print the reference of the config file\n"
            "  -h, --help           this text\n"
            "  -V, --version        print the version\n"
            "\n"
            "Exit status: 0 clean stop or valid config, 1 runtime failure,\n"
            "2 bad command line, 3 invalid configuration.\n",
            CAIRN_DEFAULT_PLUGIN_DIR);
}

static const char *
main_plugin_dir(const char *opt, const cairni_config *cfg)
{
    const char *env = getenv("CAIRN_PLUGIN_DIR");
    if (opt != NULL) {
        return opt;
    }
    if (cfg != NULL && cfg->runtime.plugin_dir && cfg->runtime.plugin_dir[0]) {
        return cfg->runtime.plugin_dir;
    }
    return (env != NULL && env[0] != '\0') ? env : CAIRN_DEFAULT_PLUGIN_DIR;
}

static int
main_describe(const char *path, const char *plugin_dir)
{
    cd_so      so;
    char       err[1024];
    cairni_buf out = {0};
    if (cd_so_open(path, plugin_dir, &so, err, sizeof(err)) != CAIRN_OK) {
        fprintf(stderr, "cairnd: %s\n", err);
        return CD_EXIT_FAIL;
    }
    const cairn_plugin_desc *d = so.desc;
    printf("# %s %s\n\n%s\n\nABI %u.%u, file %s\n\n", d->name,
           d->version ? d->version : "", d->description ? d->description : "",
           CAIRN_ABI_MAJOR_OF(d->abi_version),
           CAIRN_ABI_MINOR_OF(d->abi_version), so.path);
    if (d->config != NULL) {
        cairni_cfg_document(d->config, "config.", &out);
        fputs(out.data ? out.data : "", stdout);
    } else {
        printf("This plugin takes no config.\n");
    }
    cairni_buf_fini(&out);
    cd_so_close(&so);
    return CD_EXIT_OK;
}

static int
main_help_config(void)
{
    cairni_buf out = {0};
    cairni_cfg_document(cairni_config_fields, "", &out);
    fputs(out.data ? out.data : "", stdout);
    cairni_buf_fini(&out);
    return CD_EXIT_OK;
}

static int
main_run(cairni_config *cfg, const char *plugin_dir, bool check)
{
    char        err[2048] = "";
    cd_runtime *rt;
    sigset_t    set;
    int         sig;
    cairn_err   rv = cd_runtime_open(&rt, cfg, plugin_dir, check, err,
                                     sizeof(err));
    if (rv != CAIRN_OK) {
        fprintf(stderr, "cairnd: %s\n", err);
        return rv == CAIRN_ECONFIG || rv == CAIRN_EINVAL ? CD_EXIT_CONFIG
                                                          : CD_EXIT_FAIL;
    }
    if (check) {
        cd_runtime_close(rt);
        printf("%s: ok\n", cfg->doc->file);
        return CD_EXIT_OK;
    }
    if ((rv = cd_runtime_start(rt, err, sizeof(err))) != CAIRN_OK) {
        cairni_log(CAIRN_LOG_ERROR, "cairnd", "%s", err);
        cd_runtime_close(rt);
        return CD_EXIT_FAIL;
    }
    cairni_log(CAIRN_LOG_INFO, "cairnd", "%s running (pid %ld)",
               cfg->runtime.name, (long)getpid());
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigwait(&set, &sig);
    cairni_log(CAIRN_LOG_INFO, "cairnd", "%s: stopping", strsignal(sig));
    cd_runtime_close(rt);
    cairni_log(CAIRN_LOG_INFO, "cairnd", "stopped");
    return CD_EXIT_OK;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"plugin-dir", required_argument, NULL, 'P'},
        {"describe", required_argument, NULL, 'd'},
        {"help-config", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *pdir = NULL, *describe = NULL;
    bool        check = false;
    int         c;
    while ((c = getopt_long(argc, argv, "c:P:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'P':
            pdir = optarg;
            break;
        case 'd':
            describe = optarg;
            break;
        case 'C':
            return main_help_config();
        case 'h':
            main_usage(stdout);
            return CD_EXIT_OK;
        case 'V':
            printf("cairnd %s (plugin ABI %u.%u)\n", CAIRN_VERSION_STRING,
                   CAIRN_ABI_MAJOR, CAIRN_ABI_MINOR);
            return CD_EXIT_OK;
        default:
            main_usage(stderr);
            return CD_EXIT_USAGE;
        }
    }
    if (describe != NULL) {
        return main_describe(describe, main_plugin_dir(pdir, NULL));
    }
    if (file == NULL || optind != argc) {
        fprintf(stderr, "cairnd: %s\n",
                file == NULL ? "-c FILE is required" : "unexpected argument");
        main_usage(stderr);
        return CD_EXIT_USAGE;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char           err[2048];
    cairni_config *cfg;
    if (cairni_config_load(file, &cfg, err, sizeof(err)) != CAIRN_OK) {
        fprintf(stderr, "%s\n", err);
        return CD_EXIT_CONFIG;
    }
    cairni_log_set_level((cairn_log_level)cfg->runtime.log_level);
    int code = main_run(cfg, main_plugin_dir(pdir, cfg), check);
    cairni_config_free(cfg);
    return code;
}
