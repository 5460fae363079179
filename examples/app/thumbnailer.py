"""A stand-in external service for the example: says it runs, then waits to be stopped."""

import signal

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
print("thumbnailer ready", flush=True)
signal.sigwait({signal.SIGTERM})
print("thumbnailer stopping", flush=True)
