// The qemu port's mpconfigport.h sets MICROPY_PY_ASYNCIO to 0 without #ifndef, so a -D
// flag cannot turn it on (the header's #define comes later and wins). This user C module
// compiles MicroPython's own extmod/modasyncio.c (the `_asyncio` C module that the frozen
// asyncio package uses) with the option on, so the port's sources stay untouched. Nothing
// else in py/ or extmod/ looks at MICROPY_PY_ASYNCIO.
#include "py/mpconfig.h"
#undef MICROPY_PY_ASYNCIO
#define MICROPY_PY_ASYNCIO (1)
#include "extmod/modasyncio.c"
