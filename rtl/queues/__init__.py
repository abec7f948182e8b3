"""Descriptor rings, completion queues and their engines."""
