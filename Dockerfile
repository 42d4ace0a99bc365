# syntax=docker/dockerfile:1
#
# The official nginx image with ngx_http_authgear_module and the
# configuration from nginx-conf/ (Authgear at /, the application at /app/).
#
#     docker build -t nginx-authgear .
#     docker build --build-arg NGINX_VERSION=1.28.3 -t nginx-authgear .
#
# nginx loads a module only when it was built for the exact same version, so
# the builder compiles the module against the sources of NGINX_VERSION from
# nginx.org, configured with --with-compat like the official image's nginx.
# Optionally pass NGINX_SHA256, the tarball's SHA-256, to verify the download.

ARG NGINX_VERSION=1.28.3

FROM rust:1-bookworm AS builder

ARG NGINX_VERSION
ARG NGINX_SHA256=""

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# libclang-dev for bindgen, which generates the nginx bindings. nginx's
# configure looks for PCRE2, OpenSSL and zlib even though nothing is compiled.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev libpcre2-dev libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

RUN curl -fsSL -o nginx.tar.gz "https://nginx.org/download/nginx-${NGINX_VERSION}.tar.gz" \
    && if [ -n "$NGINX_SHA256" ]; then echo "$NGINX_SHA256  nginx.tar.gz" | sha256sum -c -; fi \
    && tar -xzf nginx.tar.gz \
    && rm nginx.tar.gz

# The whole workspace manifest set, because cargo reads every member.
COPY Cargo.toml Cargo.lock build.rs ./module/
COPY src ./module/src
COPY standin ./module/standin
COPY scripts/build-against-source.sh ./module/scripts/

RUN CARGO_TARGET_DIR=/build/target MODULE_OUTPUT=/build/ngx_http_authgear_module.so \
    bash module/scripts/build-against-source.sh "nginx-${NGINX_VERSION}"

FROM nginx:${NGINX_VERSION}

COPY --from=builder /build/ngx_http_authgear_module.so /etc/nginx/modules/
COPY nginx-conf/authgear.conf /etc/nginx/nginx.conf
COPY nginx-conf/authgear-resolver.conf /etc/nginx/authgear-resolver.conf

# authgear.conf logs to logs/access.log under the prefix /etc/nginx, which the
# image sends to the container's output. Loading the module once here fails
# the build on a version or binary signature mismatch, before nginx.conf's
# upstream host names need to resolve.
RUN mkdir -p /etc/nginx/logs \
    && ln -sf /dev/stdout /etc/nginx/logs/access.log \
    && printf 'load_module modules/ngx_http_authgear_module.so;\nevents {}\n' >/tmp/module-check.conf \
    && nginx -t -c /tmp/module-check.conf \
    && rm /tmp/module-check.conf
