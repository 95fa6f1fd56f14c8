/*
 * loader.c - opens plugin shared objects, refusing bad ones with a reason.
 *
 * Checks happen before anything of the plugin runs, cheapest first, so a
 * refusal names the real problem instead of whatever dlopen happens to
 * say: the file exists and is readable; it starts with an ELF header of
 * this host's class, byte order and machine; it is a shared object
 * (ET_DYN); then dlopen(RTLD_NOW | RTLD_LOCAL), so unresolved symbols fail
 * here and not at the first call; then the entry symbol; then the
 * descriptor's ABI major and size, before any other field is read.  Every
 * failure path dlcloses what it opened.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cairnd.h"

/* Under AddressSanitizer a plugin stays mapped after dlclose, so a leak
 * it made at run time is reported with its symbols (and can be matched
 * by a suppression) instead of as "<unknown module>". */
#if defined(__SANITIZE_ADDRESS__)
#define LOADER_DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOADER_DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)
#endif
#endif
#ifndef LOADER_DLOPEN_FLAGS
#define LOADER_DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL)
#endif

#if defined(__x86_64__)
#define LOADER_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define LOADER_MACHINE EM_AARCH64
#elif defined(__arm__)
#define LOADER_MACHINE EM_ARM
#elif defined(__i386__)
#define LOADER_MACHINE EM_386
#elif defined(__riscv)
#define LOADER_MACHINE EM_RISCV
#else
#define LOADER_MACHINE EM_NONE
#endif

#if __SIZEOF_POINTER__ == 8
#define LOADER_CLASS ELFCLASS64
#else
#define LOADER_CLASS ELFCLASS32
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LOADER_DATA ELFDATA2LSB
#else
#define LOADER_DATA ELFDATA2MSB
#endif

static const char *
loader_machine_name(unsigned m)
{
    switch (m) {
    case EM_X86_64:
        return "x86_64";
    case EM_AARCH64:
        return "aarch64";
    case EM_ARM:
        return "arm";
    case EM_386:
        return "i386";
    case EM_RISCV:
        return "riscv";
    case EM_MIPS:
        return "mips";
    case EM_PPC64:
        return "ppc64";
    default:
        return "unknown";
    }
}

/* e_machine is at the same offset in 32- and 64-bit headers. */
static unsigned
loader_u16(const unsigned char *p, int data)
{
    return data == ELFDATA2LSB ? (unsigned)(p[0] | p[1] << 8)
                               : (unsigned)(p[0] << 8 | p[1]);
}

static cairn_err
loader_check_elf(const char *path, char *err, size_t errlen)
{
    unsigned char h[sizeof(Elf64_Ehdr)];
    int           fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return cairn_errno(errno);
    }
    ssize_t n = read(fd, h, sizeof(h));
    close(fd);
    if (n < (ssize_t)sizeof(Elf32_Ehdr) || memcmp(h, ELFMAG, SELFMAG) != 0) {
        snprintf(err, errlen, "%s: not a shared object (no ELF header)", path);
        return CAIRN_ELOAD;
    }
    int      data    = h[EI_DATA];
    unsigned type    = loader_u16(h + offsetof(Elf64_Ehdr, e_type), data);
    unsigned machine = loader_u16(h + offsetof(Elf64_Ehdr, e_machine), data);
    if (h[EI_CLASS] != LOADER_CLASS || data != LOADER_DATA ||
        machine != LOADER_MACHINE) {
        snprintf(err, errlen,
                 "%s: built for another architecture (%s, %d-bit), this "
                 "host is %s, %d-bit",
                 path, loader_machine_name(machine),
                 h[EI_CLASS] == ELFCLASS64 ? 64 : 32,
                 loader_machine_name(LOADER_MACHINE),
                 LOADER_CLASS == ELFCLASS64 ? 64 : 32);
        return CAIRN_ELOAD;
    }
    if (type != ET_DYN) {
        snprintf(err, errlen, "%s: not a shared object (ELF type %u)", path,
                 type);
        return CAIRN_ELOAD;
    }
    return CAIRN_OK;
}

static cairn_err
loader_check_desc(const cd_so *so, char *err, size_t errlen)
{
    const cairn_plugin_desc *d = so->desc;
    if (d == NULL) {
        snprintf(err, errlen, "%s: entry %s returned no descriptor", so->path,
                 CAIRN_PLUGIN_ENTRY_SYM);
        return CAIRN_ELOAD;
    }
    /* Nothing but these two fields may be read before they are checked. */
    if (CAIRN_ABI_MAJOR_OF(d->abi_version) != CAIRN_ABI_MAJOR) {
        snprintf(err, errlen,
                 "%s: built for plugin ABI %u.%u, this cairnd speaks %u.x",
                 so->path, CAIRN_ABI_MAJOR_OF(d->abi_version),
                 CAIRN_ABI_MINOR_OF(d->abi_version), CAIRN_ABI_MAJOR);
        return CAIRN_EABI;
    }
    if (d->size < CAIRN_PLUGIN_DESC_V1_0_SIZE) {
        snprintf(err, errlen,
                 "%s: descriptor of %u bytes is smaller than ABI 1.0's %zu",
                 so->path, d->size, (size_t)CAIRN_PLUGIN_DESC_V1_0_SIZE);
        return CAIRN_EABI;
    }
    if (d->name == NULL || d->init == NULL || d->start == NULL ||
        d->stop == NULL || d->fini == NULL) {
        snprintf(err, errlen,
                 "%s: descriptor lacks a name or a lifecycle function",
                 so->path);
        return CAIRN_EABI;
    }
    if (d->config != NULL && d->config_size == 0) {
        snprintf(err, errlen, "%s: config table without config_size",
                 so->path);
        return CAIRN_EABI;
    }
    return CAIRN_OK;
}

static cairn_err
loader_resolve(const char *name, const char *plugin_dir, cd_so *so,
               char *err, size_t errlen)
{
    int n;
    if (strchr(name, '/') != NULL || plugin_dir == NULL ||
        plugin_dir[0] == '\0') {
        n = snprintf(so->path, sizeof(so->path), "%s", name);
    } else {
        n = snprintf(so->path, sizeof(so->path), "%s/%s", plugin_dir, name);
    }
    if (n < 0 || (size_t)n >= sizeof(so->path)) {
        snprintf(err, errlen, "%.200s: path too long", name);
        return CAIRN_EINVAL;
    }
    return CAIRN_OK;
}

cairn_err
cd_so_open(const char *name, const char *plugin_dir, cd_so *so, char *err,
           size_t errlen)
{
    cairn_err rv;
    memset(so, 0, sizeof(*so));
    if ((rv = loader_resolve(name, plugin_dir, so, err, errlen)) != CAIRN_OK ||
        (rv = loader_check_elf(so->path, err, errlen)) != CAIRN_OK) {
        return rv;
    }
    so->dl = dlopen(so->path, LOADER_DLOPEN_FLAGS);
    if (so->dl == NULL) {
        const char *why = dlerror();
        snprintf(err, errlen, "%s: cannot load: %s", so->path,
                 why ? why : "unknown dlopen error");
        return CAIRN_ELOAD;
    }
    /* POSIX: a function pointer read through a void pointer. */
    cairn_plugin_entry_fn entry;
    void                 *sym = dlsym(so->dl, CAIRN_PLUGIN_ENTRY_SYM);
    if (sym == NULL) {
        snprintf(err, errlen, "%s: no entry symbol %s (not a cairn plugin?)",
                 so->path, CAIRN_PLUGIN_ENTRY_SYM);
        rv = CAIRN_ELOAD;
        goto fail;
    }
    memcpy(&entry, &sym, sizeof(entry));
    so->desc = entry();
    if ((rv = loader_check_desc(so, err, errlen)) != CAIRN_OK) {
        goto fail;
    }
    return CAIRN_OK;
fail:
    dlclose(so->dl);
    so->dl   = NULL;
    so->desc = NULL;
    return rv;
}

void
cd_so_close(cd_so *so)
{
    if (so->dl != NULL) {
        dlclose(so->dl);
    }
    so->dl   = NULL;
    so->desc = NULL;
}
