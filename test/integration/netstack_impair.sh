#!/bin/sh
# netstack_interop.sh over an impaired path: 3 % loss, 1 % duplication and
# 3 % reordering with 2 ms delay, both ways, from a fixed seed.  Every
# transfer must still complete with identical bytes and no hang.
IMPAIR=${IMPAIR:-loss=3%,dup=1%,reorder=3%,delay=2ms,seed=20261129}
export IMPAIR
exec "$(dirname "$0")/netstack_interop.sh"
