# Compiles extmod/modasyncio.c with MICROPY_PY_ASYNCIO on (see tether_asyncio.c).
TETHER_ASYNCIO_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(TETHER_ASYNCIO_DIR)/tether_asyncio.c
