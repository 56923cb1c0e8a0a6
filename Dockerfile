# syntax=docker/dockerfile:1
#
# posfleet server image: a static binary on a distroless base, run as an
# unprivileged user, with its data in a volume.
#
#   docker build -t posfleet .
#   docker run -p 7400:7400 -v posfleet-data:/var/lib/posfleet \
#     -v "$PWD/tls:/etc/posfleet/tls:ro" \
#     -e POSFLEET_TLS_CERT=/etc/posfleet/tls/server.crt \
#     -e POSFLEET_TLS_KEY=/etc/posfleet/tls/server.key posfleet
#
# Off loopback posfleet refuses plaintext: give it a certificate as above,
# or, to try it on your own machine only, -e POSFLEET_INSECURE=true.
# The bootstrap admin token is generated into the volume (admin.token).

# The Go version matches go.mod.
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/posfleet/posfleet/internal/buildinfo.version=${VERSION}" \
      -o /out/posfleet ./cmd/posfleet \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/posfleet /usr/local/bin/posfleet
# The data directory belongs to the image's nonroot user (65532), so a
# fresh named volume does too; posfleet makes it private (0700).
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /var/lib/posfleet
USER 65532:65532
ENV POSFLEET_LISTEN=0.0.0.0:7400 \
    POSFLEET_DATA_DIR=/var/lib/posfleet \
    POSFLEET_LOG_FORMAT=json
VOLUME ["/var/lib/posfleet"]
# gRPC (terminals, operators, grpc.health.v1).
EXPOSE 7400
# No HEALTHCHECK: the image holds no shell or HTTP client, and health is
# served over gRPC (grpc.health.v1), which orchestrators probe directly
# (Kubernetes: grpc liveness/readiness probes on port 7400).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/posfleet"]
CMD ["serve"]
