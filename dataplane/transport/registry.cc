// Placeholder until the loopback and tcp transports land.
#include "dataplane/transport.h"
