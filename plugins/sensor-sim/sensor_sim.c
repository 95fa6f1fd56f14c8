#include <cairn/cairn.h>
