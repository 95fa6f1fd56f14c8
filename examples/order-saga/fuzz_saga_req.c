/*
 * fuzz_saga_req.c - libFuzzer target for the order-saga request parser
 * (CBOR map or key=value text).  Whatever it accepts must hold values
 * within the documented limits and encode back to a request that parses
 * to the same fields.
 */
#include <stdlib.h>
#include <string.h>

#include "saga.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    saga_req    r, back;
    const char *why;
    uint8_t     buf[512];
    if (saga_req_parse(data, size, &r, &why) != CAIRN_OK) {
        if (why == NULL) {
            abort();
        }
        return 0;
    }
    if (((r.has & SAGA_HAS_QTY) && (r.qty < 1 || r.qty > SAGA_QTY_MAX)) ||
        r.amount > SAGA_AMOUNT_MAX || strlen(r.item) > SAGA_ITEM_MAX ||
        strlen(r.card) > SAGA_CARD_MAX || strlen(r.order) > SAGA_ID_LEN) {
        abort();
    }
    size_t n = saga_req_encode(&r, buf, sizeof(buf));
    if (n == 0 || saga_req_parse(buf, n, &back, &why) != CAIRN_OK ||
        back.has != r.has || back.qty != r.qty || back.amount != r.amount ||
        strcmp(back.order, r.order) != 0 || strcmp(back.item, r.item) != 0 ||
        strcmp(back.card, r.card) != 0) {
        abort();
    }
    return 0;
}
