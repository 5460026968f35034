# syntax=docker/dockerfile:1
# Warren: one image for the hub and the agent.
#
#   docker build -t ghcr.io/warren/warren:0.1.0 .
#   docker run --rm ghcr.io/warren/warren:0.1.0 hub --listen 0.0.0.0:8443 --data-dir /var/lib/warren
#
# The build stage has a compiler toolchain because better-sqlite3 is a native addon (it builds from
# source when its prebuilt binary cannot be downloaded); the runtime stage is node:20-slim with only
# production dependencies, the compiled JavaScript, and a non-root user whose uid (10001) matches the
# runAsUser of the Kubernetes manifests (src/kube/manifest.ts, deploy/helm/warren).

FROM node:20-bookworm AS build
WORKDIR /app
# Dependencies first, so that source edits reuse this layer. --ignore-scripts: the package's own
# `prepare` script would run tsc before the sources are here; native addons are rebuilt explicitly.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build-ui.mjs scripts/build-agent.mjs ./scripts/
COPY src ./src
COPY bin ./bin
# `npm run build`: the compiled JavaScript, the web UI (dist/ui, which the hub serves) and the agent's
# bundle (dist/warren-agent.cjs, what `warren-agent` runs).
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Application files stay owned by root: the service user can run them, not change them.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
# `warren` on PATH for the Kubernetes manifests' `command: [warren, …]` (bin/warren.js has a node shebang).
RUN chmod 0755 /app/bin/warren.js \
 && ln -s /app/bin/warren.js /usr/local/bin/warren \
 && groupadd --system --gid 10001 warren \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/warren --no-create-home --shell /usr/sbin/nologin warren \
 && mkdir -p /var/lib/warren \
 && chown 10001:10001 /var/lib/warren
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# Relative defaults (./warren-data, ./warren-agent) land in a writable directory.
WORKDIR /var/lib/warren
# 8443: the hub's one HTTPS port; 8081: the agent's health endpoints.
EXPOSE 8443 8081
ENTRYPOINT ["node", "--min-semi-space-size=16", "--heap-growing-percent=300", "/app/bin/warren.js"]
CMD ["--help"]
