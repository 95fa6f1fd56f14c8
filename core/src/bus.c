/* bus.c - placeholder until the module lands. */
#include "cairni.h"
