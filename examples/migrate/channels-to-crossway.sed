# Rewrites a Channels + Daphne + channels_redis project's Python files for Crossway (GNU sed -E):
#   sed -i -E -f channels-to-crossway.sed $(grep -rlE --include='*.py' 'channels|daphne' .)
# Settings keep their format; what changes is module paths and two INSTALLED_APPS names.
# The paths that do not map one to one come first.
s/\bchannels_redis\.core\b/channel_layers.redis/g
s/\bchannels_redis\.pubsub\b/channel_layers.redis_pubsub/g
s/\bchannels\.layers\.InMemoryChannelLayer\b/channel_layers.memory.InMemoryChannelLayer/g
s/^(\s*)from channels\.testing import ChannelsLiveServerTestCase$/\1from consumers.testing_live import ChannelsLiveServerTestCase/
# INSTALLED_APPS: Daphne's runserver becomes Crossway's, Channels' app (runworker) ours.
s/(["'])daphne\1/\1asgi_server\1/g
s/(["'])channels\1/\1consumers\1/g
# Everything else keeps its name under consumers: consumer, generic.*, routing, layers, auth,
# sessions, middleware, security.websocket, db, exceptions, testing.
s/\bfrom channels(\.| import )/from consumers\1/g
s/\bimport channels\./import consumers./g
s/\bchannels\.(consumer|generic|routing|layers|auth|sessions|middleware|security|db|exceptions|testing)\b/consumers.\1/g
