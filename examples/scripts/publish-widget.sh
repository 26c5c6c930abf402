#!/bin/sh
# Stand-in for seed 003's `deploy-html.sh` (Phase 4): uploads the HTML widget of VERSION
# to the CDN, here the directory CDN laid out like cdn.varai.ai, and points `latest` at
# it. Run after the bake: a published widget cannot be recalled by a rollback.
#
#   publish-widget.sh CDN VERSION             e.g. publish-widget.sh /srv/cdn 1.0.0
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 CDN VERSION" >&2
    exit 2
fi
cdn=$1/widgets/html version=$2
mkdir -p "$cdn/$version/js" "$cdn/latest/js"
printf '/* varai-widget %s */\n' "$version" >"$cdn/$version/js/varai-widget.min.js"
cp "$cdn/$version/js/varai-widget.min.js" "$cdn/latest/js/varai-widget.min.js"
echo "published varai-widget $version to the CDN"
