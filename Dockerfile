# syntax=docker/dockerfile:1
# Build: a static binary (no cgo), reproducible paths, no debug info.
FROM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ssehub ./cmd/ssehub
# The example config, readable by the user below whatever mode the build
# host's checkout gave it (a COPY keeps it: under umask 027 or 077, 0640 or
# 0600, which only root could read), and still root's.
RUN install -D -m 0644 config/ssehub.yaml /out/config/ssehub.yaml
# The folder of the embedded NATS server's store, /app/data below, with its
# README: group 0 may do what the owner may (g=u), whatever the checkout's
# modes (a COPY --chmod needs BuildKit).
RUN install -d -m 0775 /out/store/data
RUN install -m 0664 deploy/data/README /out/store/data/README

# Run: nothing but the binary (the demo page is embedded), the example
# config and the CA certificates, as a non-root user.
FROM scratch
COPY --from=build /out/ssehub /usr/local/bin/ssehub
# The system's CA certificates, the build stage's: TLS to NATS without
# nats.ca_file trusts them, as a hosted NATS service's certificate needs.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/config/ssehub.yaml /app/config/ssehub.yaml
# The embedded NATS server's store (nats.store_dir: data/nats), writable by
# the user below and, through group 0, by any user in it (a platform that
# runs the image with a uid of its own, in group 0, as OpenShift does); a
# named volume mounted at /app/data takes its ownership and modes.
COPY --from=build --chown=65532:0 /out/store /app
WORKDIR /app
USER 65532:65532
EXPOSE 8111
HEALTHCHECK --interval=10s --timeout=3s --start-period=3s --retries=3 \
  CMD ["/usr/local/bin/ssehub", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ssehub"]
