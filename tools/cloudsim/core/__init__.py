"""The emulator's front: what every cloud plug-in shares (see plugin.py)."""
