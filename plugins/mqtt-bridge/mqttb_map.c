/*
 * mqttb_map.c - the two containers of the bridge: an intrusive doubly
 * linked list of entries (the handoff, direct and live lists) and a map
 * from a 64-bit key (an outbox seq) to an entry, with open addressing and
 * linear probing (deletion shifts the rest of the run back, so there are
 * no tombstones and lookups stay short however many records came and
 * went).
 *
 * No locking here: the caller holds b->lock for the shared ones (handoff,
 * direct, owned, done), the live list belongs to the network thread.
 */
#include <stdlib.h>
#include <string.h>

#include "mqttb.h"

void
mqttb_list_push(mqttb_list *l, mqttb_entry *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = e;
    } else {
        l->head = e;
    }
    l->tail = e;
    l->count++;
}

void
mqttb_list_remove(mqttb_list *l, mqttb_entry *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        l->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        l->tail = e->prev;
    }
    e->prev = e->next = NULL;
    l->count--;
}

mqttb_entry *
mqttb_list_pop(mqttb_list *l)
{
    mqttb_entry *e = l->head;
    if (e != NULL) {
        mqttb_list_remove(l, e);
    }
    return e;
}

static size_t
mqttb_hash(const mqttb_map *m, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (m->cap - 1);
}

static cairn_err
mqttb_map_grow(mqttb_map *m)
{
    mqttb_map n = {.cap = m->cap ? m->cap * 2 : 256};
    n.slots = calloc(n.cap, sizeof(*n.slots));
    if (n.slots == NULL) {
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].val != NULL) {
            size_t j = mqttb_hash(&n, m->slots[i].key);
            while (n.slots[j].val != NULL) {
                j = (j + 1) & (n.cap - 1);
            }
            n.slots[j] = m->slots[i];
            n.count++;
        }
    }
    free(m->slots);
    *m = n;
    return CAIRN_OK;
}

cairn_err
mqttb_map_put(mqttb_map *m, uint64_t key, mqttb_entry *e)
{
    if ((m->count + 1) * 2 > m->cap && mqttb_map_grow(m) != CAIRN_OK) {
        return CAIRN_ENOMEM;
    }
    size_t i = mqttb_hash(m, key);
    while (m->slots[i].val != NULL && m->slots[i].key != key) {
        i = (i + 1) & (m->cap - 1);
    }
    m->count += m->slots[i].val == NULL;
    m->slots[i] = (struct mqttb_slot){key, e};
    return CAIRN_OK;
}

mqttb_entry *
mqttb_map_get(const mqttb_map *m, uint64_t key)
{
    if (m->cap == 0) {
        return NULL;
    }
    for (size_t i = mqttb_hash(m, key); m->slots[i].val != NULL;
         i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == key) {
            return m->slots[i].val;
        }
    }
    return NULL;
}

/* Linear probing: deleting shifts later members of the run back. */
void
mqttb_map_del(mqttb_map *m, uint64_t key)
{
    size_t i = m->cap ? mqttb_hash(m, key) : 0;
    while (m->cap != 0 && m->slots[i].val != NULL && m->slots[i].key != key) {
        i = (i + 1) & (m->cap - 1);
    }
    if (m->cap == 0 || m->slots[i].val == NULL) {
        return;
    }
    m->slots[i].val = NULL;
    m->count--;
    for (size_t j = (i + 1) & (m->cap - 1); m->slots[j].val != NULL;
         j = (j + 1) & (m->cap - 1)) {
        size_t home = mqttb_hash(m, m->slots[j].key);
        /* Move j into the hole at i unless its home lies in (i, j]. */
        if (((j - home) & (m->cap - 1)) >= ((j - i) & (m->cap - 1))) {
            m->slots[i] = m->slots[j];
            m->slots[j].val = NULL;
            i = j;
        }
    }
}

void
mqttb_map_fini(mqttb_map *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}
