# The one image every weft component runs: `weft-proxy` (the node proxy alone),
# `weft control`, `weft dashboard` and the demo app `weft hello-world`.
# Build: docker build -t weft:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Two builds: built together, weft's features (the gRPC server, kube's logging) would be
# unified into weft-proxy's dependencies; alone, it is the binary bench/ measures.
RUN cargo build --profile dist --locked -p weft-proxy \
    && cargo build --profile dist --locked -p weft \
    && cp target/dist/weft target/dist/weft-proxy /

# distroless/cc: glibc and libgcc only; runs as uid 65532 like the manifests ask.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /weft /weft-proxy /usr/local/bin/
USER 65532:65532
EXPOSE 4140 4141 8084 8086 9990
ENTRYPOINT ["/usr/local/bin/weft"]
CMD ["proxy"]
