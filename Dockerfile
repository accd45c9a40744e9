# One image with both binaries of this workspace: the control plane
# (`only1mcp`) and the sample MCP backend (`mcp-test-backend`), plus the
# Wasm filter. Used by docker-compose.yml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip1 \
 && cargo build --release -p only1mcp-control-plane -p only1mcp-tests --bins \
 && cargo build -p only1mcp-filter --target wasm32-wasip1 --profile wasm

FROM debian:bookworm-slim
COPY --from=build /src/target/release/only1mcp /src/target/release/mcp-test-backend /usr/local/bin/
COPY --from=build /src/target/wasm32-wasip1/wasm/only1mcp_filter.wasm /opt/only1mcp/only1mcp_filter.wasm
ENTRYPOINT []
