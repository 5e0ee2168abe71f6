#!/bin/bash
# entrypoint.sh -- the StreamDb container's entry point (installed as
# /usr/local/bin/streamdb-entrypoint by the Dockerfile; README.md "Running in
# Docker").
#
#   (no arguments) or -OPTION ...  start streamdbd on $STREAMDB_CONFIG
#                                  (default /etc/streamdb/streamdbd.json) with
#                                  the token found below; the options are
#                                  passed on to streamdbd
#   healthcheck                    `streamdb ping` against the running daemon
#                                  (the image's HEALTHCHECK)
#   any other command              run as is (e.g. streamdb --db FILE check)
#
# The auth token comes from, in this order: the file named by
# $STREAMDB_TOKEN_FILE, the secret file /run/secrets/streamdb_token, or
# $STREAMDB_TOKEN (written to a mode-0600 file; the variable is removed from
# the daemon's environment).  $STREAMDB_LISTEN overrides the config's listen
# address.  The image's config listens on 0.0.0.0:7878, which streamdbd
# refuses without a token: this script says so before starting it.
set -euo pipefail

CONFIG=${STREAMDB_CONFIG:-/etc/streamdb/streamdbd.json}
TOKEN_COPY=/run/streamdb/token     # the token in use (a mode-0600 copy), for healthcheck

say() { echo "streamdb-entrypoint: $*" >&2; }

# conf_str KEY: the string value of KEY in the config (first match; enough
# for the flat keys read here, whatever the JSON's layout).
conf_str() {
    grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" "$CONFIG" | head -n 1 | sed 's/.*:[[:space:]]*"\(.*\)"$/\1/' || true
}

if [[ ${1:-} == healthcheck ]]; then
    args=()
    sock=$(conf_str unix_socket)
    listen=${STREAMDB_LISTEN:-$(conf_str listen)}
    if [[ -n $sock ]]; then
        args+=(-s "$sock")
    else
        args+=(-H "${listen/0.0.0.0/127.0.0.1}")
    fi
    [[ ! -e $TOKEN_COPY ]] || args+=(--token-file "$TOKEN_COPY")
    exec streamdb "${args[@]}" ping
fi
if [[ $# -gt 0 && ${1:0:1} != - ]]; then
    exec "$@"
fi

[[ -r $CONFIG ]] || { say "cannot read the config $CONFIG (mount one there, or set STREAMDB_CONFIG)"; exit 2; }

token_file='' token_from=''
if [[ -n ${STREAMDB_TOKEN_FILE:-} ]]; then
    token_file=$STREAMDB_TOKEN_FILE token_from="\$STREAMDB_TOKEN_FILE ($STREAMDB_TOKEN_FILE)"
elif [[ -e /run/secrets/streamdb_token ]]; then
    token_file=/run/secrets/streamdb_token token_from="secret /run/secrets/streamdb_token"
elif [[ -n ${STREAMDB_TOKEN:-} ]]; then
    rm -f "$TOKEN_COPY"
    (umask 077 && printf '%s\n' "$STREAMDB_TOKEN" >"$TOKEN_COPY")
    token_file=$TOKEN_COPY token_from="\$STREAMDB_TOKEN"
fi
unset STREAMDB_TOKEN
if [[ -n $token_file ]]; then
    if [[ ! -r $token_file ]]; then
        say "cannot read the token file $token_file as uid $(id -u): make it readable by uid $(id -u) or gid $(id -g)"
        exit 2
    fi
    # streamdbd refuses a token file that group or others may access, and a
    # secret is often mode 0444: the daemon reads a private copy
    if [[ $token_file != "$TOKEN_COPY" ]]; then
        rm -f "$TOKEN_COPY"
        (umask 077 && cat "$token_file" >"$TOKEN_COPY")
    fi
fi

listen=${STREAMDB_LISTEN:-$(conf_str listen)}
if [[ -z $token_file ]] && ! grep -Eq '"auth_token(_file)?"[[:space:]]*:[[:space:]]*"[^"]' "$CONFIG"; then
    case $listen in
    "" | 127.* | localhost:* | "[::1]:"*) ;;
    *)
        say "error: no auth token.  streamdbd listens on $listen, which is not a loopback"
        say "address, and refuses to do so without a token.  Give the container one of:"
        say "  -e STREAMDB_TOKEN=...            the token itself (visible in 'docker inspect')"
        say "  a secret file /run/secrets/streamdb_token  (Docker/Compose secrets, or"
        say "                                   -v ./token:/run/secrets/streamdb_token:ro)"
        say "  -e STREAMDB_TOKEN_FILE=PATH      a token file at PATH inside the container"
        say "or serve only inside the container, without a token: -e STREAMDB_LISTEN=127.0.0.1:7878"
        exit 2
        ;;
    esac
fi

data_dir=$(conf_str data_dir)
if [[ -n $data_dir && -d $data_dir && ! -w $data_dir ]]; then
    say "the data directory $data_dir is not writable by uid $(id -u): for a bind mount, chown $(id -u):$(id -g) it on the host"
    exit 2
fi

args=(-c "$CONFIG")
[[ -z ${STREAMDB_LISTEN:-} ]] || args+=(-l "$STREAMDB_LISTEN")
[[ -z $token_file ]] || args+=(--token-file "$token_file")
say "starting streamdbd: config $CONFIG, listen ${listen:-none}, data ${data_dir:-?}, token ${token_from:-none}"
exec streamdbd "${args[@]}" "$@"
