/*
 * fuzz_json.c - the http-gateway's JSON <-> CBOR converter on untrusted
 * bytes, both directions.
 *
 * The input is tried as JSON (a request body) and as CBOR (a service's
 * reply, a bus payload).  Whatever converts must convert back: JSON ->
 * CBOR -> JSON must succeed, and converting that JSON again must give
 * the same CBOR bytes (the round trip is stable).  Limits as the gateway's
 * defaults, smaller output cap so the fuzzer stays fast.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const gw_limits lim = {
    .max_depth = 32, .max_items = 10000, .max_out = 1 << 20};

static void
check_roundtrip(const uint8_t *cbor, size_t len)
{
    gw_buf json = {0}, again = {0};
    if (gw_cbor_to_json(cbor, len, &lim, &json, NULL, 0) != CAIRN_OK) {
        abort(); /* CBOR we produced must convert back */
    }
    if (gw_json_to_cbor((const char *)json.data, json.len, &lim, &again,
                        NULL, 0) != CAIRN_OK) {
        abort();
    }
    /* Floats print with %.17g and read back exactly: same bytes. */
    if (again.len != len || memcmp(again.data, cbor, len) != 0) {
        abort();
    }
    gw_buf_fini(&json);
    gw_buf_fini(&again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_buf out = {0};
    char   why[128];
    if (gw_json_to_cbor((const char *)data, size, &lim, &out, why,
                        sizeof(why)) == CAIRN_OK) {
        check_roundtrip(out.data, out.len);
    }
    gw_buf_fini(&out);
    gw_buf text = {0};
    (void)gw_cbor_to_json(data, size, &lim, &text, why, sizeof(why));
    gw_buf_fini(&text);
    (void)gw_json_valid((const char *)data, size, &lim);
    return 0;
}
