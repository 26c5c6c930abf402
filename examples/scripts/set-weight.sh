#!/bin/sh
# Example weight command for `router: { kind: command }`: liftoff calls it with the
# candidate's share in percent ("0", "5", "12.5", "100"), also in $LIFTOFF_WEIGHT.
# A real one would call your load balancer (HAProxy runtime API, nginx upstream
# weights, a cloud LB); this one records the weight so you can watch it change.
set -eu
echo "$(date -u +%H:%M:%S) ${LIFTOFF_SERVICE:-service} candidate=$1%" >> "${WEIGHT_LOG:-/tmp/liftoff-example-weights.log}"
