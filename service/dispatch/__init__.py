"""Transactional outbox and dispatcher (see ``service.dispatch.outbox``)."""
