# shellcheck shell=bash
# bench/nginx.sh: sourced by bench/http.sh and bench/http-get.sh.
# write_nginx_conf DIR WWW PORT: writes DIR/nginx.conf for Debian's nginx, tuned as a fair
# peer for a static file server: one worker (the benches pin it to one core), sendfile and
# tcp_nopush on, no access log, long keep-alive; pid, logs and temp paths under DIR; listening on
# 127.0.0.1:PORT and serving WWW.
# write_nginx_conf DIR WWW PORT TLS_PORT CERT KEY: the same, and HTTPS on 127.0.0.1:TLS_PORT
# with that certificate and key (TLS 1.2 and 1.3, as `socklab http serve --tls-cert` offers;
# nginx's default ciphers and session settings).
# With NGINX_LOG_PORT and NGINX_LOG_FILE set, one more server on that port logs every request
# to that file (nginx's default combined format, unbuffered as Debian ships it); with
# NGINX_OFC_PORT, one more with `open_file_cache max=10000 inactive=20s;
# open_file_cache_valid 1s;`.
write_nginx_conf() {
    local dir=$1 www=$2 port=$3 tls_port=${4:-} cert=${5:-} key=${6:-} tls=""
    mkdir -p "$dir"
    if [[ -n "$tls_port" ]]; then
        tls="
    server {
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $www;
    }"
    fi
    if [[ -n "${NGINX_LOG_PORT:-}" ]]; then
        tls="$tls
    server {
        listen 127.0.0.1:$NGINX_LOG_PORT;
        access_log $NGINX_LOG_FILE;
        root $www;
    }"
    fi
    if [[ -n "${NGINX_OFC_PORT:-}" ]]; then
        tls="$tls
    server {
        listen 127.0.0.1:$NGINX_OFC_PORT;
        open_file_cache max=10000 inactive=20s;
        open_file_cache_valid 1s;
        root $www;
    }"
    fi
    cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port;
        root $www;
    }$tls
}
CONF
}
