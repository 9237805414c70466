/* jemalloc compatibility header: programs that include <jemalloc/jemalloc.h>
 * build against rjem unchanged. See rjem.h. */
#ifndef JEMALLOC_H_
#define JEMALLOC_H_
#include "../rjem.h"
#endif
