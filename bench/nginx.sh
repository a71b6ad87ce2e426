# shellcheck shell=bash
# bench/nginx.sh: sourced by bench/http.sh and bench/http-get.sh.
# write_nginx_conf DIR WWW PORT: writes DIR/nginx.conf for Debian's nginx, tuned as a fair
# peer for a static file server: one worker (the benches pin it to one core), sendfile and
# tcp_nopush on, no access log, long keep-alive; pid, logs and temp paths under DIR; listening on
# 127.0.0.1:PORT and serving WWW.
write_nginx_conf() {
    local dir=$1 www=$2 port=$3
    mkdir -p "$dir"
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
    }
}
CONF
}
