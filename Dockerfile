# The image is built by the same scripts as CI: scripts/publish.sh sets up the BPF
# toolchain from apt and publishes the agent as one native executable (NativeAOT).
#
# .NET 10 ships no Debian images (dotnet/dotnet-docker#6526), and Ubuntu 24.04's bpftool
# is a wrapper that looks for the running kernel's linux-tools, so the build runs on
# Debian 12, where the scripts are tested, with the SDK copied from Microsoft's image (a
# portable build that needs only glibc, ICU and OpenSSL).
FROM mcr.microsoft.com/dotnet/sdk:10.0-noble AS sdk

FROM debian:12 AS build
# The rest of the toolchain (clang and zlib for the native link too) comes from scripts/setup.sh.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libicu72 libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=sdk /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
WORKDIR /src
COPY . .
# bpf/Makefile generates vmlinux.h from the build machine's /sys/kernel/btf/vmlinux (any
# BTF kernel will do: CO-RE relocates at load), so build on a kernel with BTF.
RUN scripts/publish.sh /out

# No .NET runtime: the agent is native. libbpf1 (with libelf and zlib) for the BPF
# objects, OpenSSL for TLS on /metrics and to the API server, CA certificates for the latter.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /out/socktrace /out/libsocktrace_caps.so /out/appsettings.json /app/
EXPOSE 9464
ENTRYPOINT ["/app/socktrace"]
