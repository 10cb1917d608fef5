# dmcp-gateway: one image for every role (gateway, wrap, status, tail, up).
#   docker build -t dmcp-gateway .
#   docker run --rm dmcp-gateway --help
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY adapters ./adapters
# Install, build dist/, then the dev dependencies go.
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json dmcp.config.json README.md PROTOCOL.md ./
COPY schemas ./schemas
COPY docs ./docs
USER node
EXPOSE 8808
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["gateway", "--http", "8808", "--host", "0.0.0.0", "--nats", "nats://nats:4222"]
