#!/bin/sh
# converge lab test app (converge-lab/app:<version>).
#
# Serves one line on port 80 (busybox httpd), at / and /index.html:
#     app=<version> hostname=<container hostname> node=<$NODE or "unknown">
# and the bare version at /version. Give the service `NODE={{.Node.Hostname}}` in its
# environment to have the node's name in the answer.
#
# With APP_STATUS=<code> (for example 500) every request to / answers that status instead,
# through a CGI script (busybox httpd runs /cgi-bin/index.cgi when there is no index.html):
# a new version that is broken, for rollout tests.
#
# As PID 1 a shell ignores SIGTERM unless it traps it; this one forwards TERM/INT to its
# child, so `docker stop` is instant. With arguments it runs them instead of httpd.
mkdir -p /www
echo "app=${APP_VERSION} hostname=$(hostname) node=${NODE:-unknown}" > /www/index.html
echo "${APP_VERSION}" > /www/version
if [ -n "${APP_STATUS}" ] && [ "${APP_STATUS}" != 200 ]; then
    rm /www/index.html
    mkdir -p /www/cgi-bin
    printf '#!/bin/sh\nprintf "Status: %s converge-lab\\r\\nContent-Type: text/plain\\r\\n\\r\\napp=%s status=%s\\n"\n' \
        "${APP_STATUS}" "${APP_VERSION}" "${APP_STATUS}" > /www/cgi-bin/index.cgi
    chmod +x /www/cgi-bin/index.cgi
fi
if [ "$#" -gt 0 ]; then
    "$@" &
else
    httpd -f -p "${PORT:-80}" -h /www &
fi
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
status=0
wait "$child" || status=$?
# A trapped signal interrupts `wait`; wait again for the child's own exit status.
while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    status=$?
done
exit "$status"
