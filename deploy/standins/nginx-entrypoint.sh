#!/bin/sh
# The stand-in nginx image's entry point (scripts/compose): what the official image's does
# for this project, with Debian's nginx: each /etc/nginx/templates/*.template rendered by
# envsubst (only the variables NGINX_ENVSUBST_FILTER matches) into /etc/nginx/conf.d, then
# nginx in the foreground.
set -eu
filter="${NGINX_ENVSUBST_FILTER:-}"
vars=$(env | cut -d= -f1 | grep -E "${filter:-.}" | sed 's/^/$/' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
    [ -e "$template" ] || continue
    name=$(basename "$template" .template)
    envsubst "$vars" < "$template" > "/etc/nginx/conf.d/$name"
done
exec nginx -g 'daemon off;'
