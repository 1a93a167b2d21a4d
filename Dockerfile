# leaktrace in a container. CI does not build this image (no Docker engine on
# the CI machines); it is kept small so that it is obviously right.
#
#   docker build -t leaktrace .
#   docker run --rm --privileged --pid=host leaktrace attach PID
#
# Capabilities needed instead of --privileged: CAP_BPF, CAP_PERFMON,
# CAP_SYS_PTRACE, CAP_SYS_RESOURCE (memlock on older kernels), CAP_SYS_ADMIN
# (reading other processes' /proc/PID/fd). --pid=host lets it see the host's
# processes. The agent uses the same image:
#
#   docker run -d --privileged --pid=host --network=host \
#     -v /sys/kernel/btf:/sys/kernel/btf:ro -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
#     leaktrace agent --web.listen-address :9808
# Base images by their full names: podman and buildah refuse short ones.
FROM docker.io/library/golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /leaktrace ./cmd/leaktrace

FROM gcr.io/distroless/static-debian12:latest
COPY --from=build /leaktrace /usr/local/bin/leaktrace
EXPOSE 9808
ENTRYPOINT ["/usr/local/bin/leaktrace"]
CMD ["demo"]
