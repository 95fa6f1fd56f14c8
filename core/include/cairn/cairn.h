/*
 * cairn/cairn.h - everything a plugin or embedding program includes.
 */
#ifndef CAIRN_CAIRN_H
#define CAIRN_CAIRN_H

#include <cairn/err.h>
#include <cairn/envelope.h>
#include <cairn/topic.h>
#include <cairn/plugin.h>

#define CAIRN_VERSION_STRING "0.1.0"

#endif /* CAIRN_CAIRN_H */
