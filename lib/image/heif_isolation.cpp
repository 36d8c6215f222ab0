#include "image/heif_isolation.h"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>

#include <fmt/format.h>

#include "image/heif_image.h"
#include "image/limits.h"
#include "util/byte_text.h"
#include "util/fd_io.h"
#include "util/plugin.h"

extern char** environ;

namespace cbir {
namespace {

constexpr const char* kDecoderProgram = "cbir-heif-decoder";
// The reply: a line "ok WIDTH HEIGHT" followed by the RGB rows, or a line "error MESSAGE".
constexpr size_t kMaxReplyLine = 4096;
// A decode that neither finishes nor uses CPU (its CPU limit would end it) is ended after this.
constexpr int kWallLimitSeconds = 600;

// Per declared pixel: the codec's YUV planes (16-bit samples for 10-bit HEIC/AVIF: 3 bytes), libheif's
// RGB conversion (up to 6 bytes at 16 bits, then 3 at 8) and our copy (3).
constexpr uint64_t kBytesPerDeclaredPixel = 16;
// For the codecs' threads, tables and reference frames of a small image.
constexpr uint64_t kHeadroomBytes = 256ull << 20;
// A 250-megapixel image decodes in about 10 s of CPU here.
constexpr uint64_t kCpuSecondsBase = 30;
constexpr uint64_t kPixelsPerCpuSecond = 4'000'000;

struct OwnedFd {
    int fd = -1;
    OwnedFd() = default;
    explicit OwnedFd(int f) : fd(f) {}
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    ~OwnedFd() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

std::filesystem::path decoder_program() {
#ifdef CBIR_HEIF_DECODER_BUILD_PATH
    const char* build_path = CBIR_HEIF_DECODER_BUILD_PATH;
#else
    const char* build_path = nullptr;
#endif
    return find_companion_program(kDecoderProgram, "CBIR_HEIF_DECODER", build_path);
}

// Reads from the child's pipe until `size` bytes arrived, the pipe ended or the deadline passed.
class ReplyReader {
public:
    explicit ReplyReader(int fd) : fd_(fd), deadline_(std::chrono::steady_clock::now() + std::chrono::seconds(kWallLimitSeconds)) {}
    bool read(char* out, size_t size) {
        while (size > 0) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                timed_out_ = true;
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 60'000)));
            if (ready < 0 && errno == EINTR) continue;
            if (ready < 0) return false;
            if (ready == 0) continue;
            const ssize_t n = ::read(fd_, out, size);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            out += n;
            size -= static_cast<size_t>(n);
        }
        return true;
    }
    bool read_line(std::string& line) {
        char c = 0;
        while (line.size() < kMaxReplyLine) {
            if (!read(&c, 1)) return false;
            if (c == '\n') return true;
            line.push_back(c);
        }
        return false;
    }
    bool timed_out() const { return timed_out_; }

private:
    int fd_;
    std::chrono::steady_clock::time_point deadline_;
    bool timed_out_ = false;
};

// Why the child ended without a complete reply, in words.
std::string child_failure(int status, bool timed_out) {
    if (timed_out) return fmt::format("decoding took more than {} s", kWallLimitSeconds);
    if (WIFSIGNALED(status)) {
        const int signal = WTERMSIG(status);
        if (signal == SIGXCPU) return "decoding used more CPU time than an image of its declared size needs";
        return fmt::format("the decoder crashed ({}): the file is corrupt or codes more pixels than it declares",
                           sigabbrev_np(signal) ? std::string("SIG") + sigabbrev_np(signal) : std::to_string(signal));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return std::string("cannot run ") + kDecoderProgram;
    return "the decoder ended without an answer";
}

std::string decoding_error(ImageFormat format, const std::string& cause) {
    return std::string("not a decodable image (") + image_format_name(format) + ": " + cause + ")";
}

uint64_t mapped_bytes_now() {
    std::ifstream statm("/proc/self/statm");
    uint64_t pages = 0;
    statm >> pages;
    return pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// The caps on this (the child's) process, from the size the file declares.
void cap_resources(long long declared_pixels, size_t file_bytes) {
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    const rlim_t cpu = kCpuSecondsBase + static_cast<uint64_t>(declared_pixels) / kPixelsPerCpuSecond;
    const rlimit cpu_limit{cpu, cpu + 5};
    ::setrlimit(RLIMIT_CPU, &cpu_limit);
    // One malloc arena and small thread stacks keep the address space close to what is used.
    ::mallopt(M_ARENA_MAX, 1);
    pthread_attr_t attributes;
    if (::pthread_attr_init(&attributes) == 0) {
        ::pthread_attr_setstacksize(&attributes, 2u << 20);
        ::pthread_setattr_default_np(&attributes);
        ::pthread_attr_destroy(&attributes);
    }
    const rlim_t address_space =
        mapped_bytes_now() + file_bytes + kHeadroomBytes + kBytesPerDeclaredPixel * static_cast<uint64_t>(declared_pixels);
    const rlimit as_limit{address_space, address_space};
    ::setrlimit(RLIMIT_AS, &as_limit);
}

int reply_error(int out_fd, const std::string& message) {
    const std::string line = "error " + one_line(message) + "\n";
    write_fully(out_fd, line.data(), line.size());
    return 1;
}

}  // namespace

DecodedImage decode_heif(const std::string& bytes, const ImageHeader& header) {
    DecodedImage out;
    const std::filesystem::path program = decoder_program();
    if (program.empty()) {
        const char* named = std::getenv("CBIR_HEIF_DECODER");
        out.error = decoding_error(header.format, named && *named
                                                      ? std::string("CBIR_HEIF_DECODER names ") + named +
                                                            ", which is not an executable program"
                                                      : std::string("its decoder ") + kDecoderProgram +
                                                            " is not installed beside cbir (reinstall cbir, or set "
                                                            "CBIR_HEIF_DECODER)");
        return out;
    }
    // The file goes to the child as an anonymous in-memory file on its standard input.
    OwnedFd input(::memfd_create("cbir-heif-input", MFD_CLOEXEC));
    int pipe_fds[2];
    if (input.fd < 0 || !write_fully(input.fd, bytes.data(), bytes.size()) || ::lseek(input.fd, 0, SEEK_SET) != 0 ||
        ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        out.error = decoding_error(header.format, std::string("cannot start its decoder: ") + std::strerror(errno));
        return out;
    }
    OwnedFd reply(pipe_fds[0]), reply_end(pipe_fds[1]);

    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, input.fd, 0);
    ::posix_spawn_file_actions_adddup2(&actions, reply_end.fd, 1);
    ::posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // no store lock or socket goes with it
    std::string program_name = program.string();
    char* argv[] = {program_name.data(), nullptr};
    pid_t pid = 0;
    const int spawned = ::posix_spawn(&pid, program_name.c_str(), &actions, nullptr, argv, environ);
    ::posix_spawn_file_actions_destroy(&actions);
    reply_end.reset();
    input.reset();
    if (spawned != 0) {
        out.error = decoding_error(header.format, "cannot start " + program_name + ": " + std::strerror(spawned));
        return out;
    }

    ReplyReader reader(reply.fd);
    std::string line;
    bool complete = false;
    if (reader.read_line(line)) {
        int width = 0, height = 0;
        if (line.rfind("error ", 0) == 0) {
            out.error = line.substr(6);
            complete = true;
        } else if (std::sscanf(line.c_str(), "ok %d %d", &width, &height) == 2 && width > 0 && height > 0 &&
                   static_cast<long long>(width) * height <= header.pixels()) {
            cv::Mat rgb(height, width, CV_8UC3);
            if (reader.read(reinterpret_cast<char*>(rgb.data), rgb.total() * rgb.elemSize())) {
                out.rgb = std::move(rgb);
                complete = true;
            }
        }
    }
    if (!complete) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!complete) out.error = decoding_error(header.format, child_failure(status, reader.timed_out()));
    return out;
}

int run_heif_decoder(int in_fd, int out_fd) {
    std::string bytes;
    const uint64_t max_bytes = max_image_file_bytes();
    char buffer[1 << 16];
    for (;;) {
        const ssize_t n = ::read(in_fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return reply_error(out_fd, std::string("cannot read the file: ") + std::strerror(errno));
        if (n == 0) break;
        if (bytes.size() + static_cast<size_t>(n) > max_bytes) return reply_error(out_fd, file_size_limit_error(bytes.size() + n));
        bytes.append(buffer, static_cast<size_t>(n));
    }
    const HeaderRead header = read_image_header(bytes);
    if (header.status != HeaderRead::Status::complete) return reply_error(out_fd, header.error);
    const ImageFormat format = header.header.format;
    if (format != ImageFormat::heic && format != ImageFormat::avif) return reply_error(out_fd, "not a HEIC or AVIF file");
    if (std::string limit = image_limit_error(header.header); !limit.empty()) return reply_error(out_fd, limit);

    cap_resources(header.header.pixels(), bytes.size());
    DecodedImage decoded;
    try {
        decoded = decode_heif_in_this_process(bytes, header.header);
    } catch (const std::bad_alloc&) {
        return reply_error(out_fd, decoding_error(format, fmt::format("decoding needs more memory than its declared {}×{} pixels take",
                                                                      header.header.width, header.header.height)));
    }
    // A codec that failed under the cap may have met a stream coding more pixels than declared.
    if (!decoded.ok())
        return reply_error(out_fd, decoded.error + fmt::format(" (decoded within the memory its declared {}×{} pixels allow)",
                                                               header.header.width, header.header.height));
    const cv::Mat& rgb = decoded.rgb;
    // irot turns the declared size, clap crops it: never more pixels than declared.
    if (static_cast<long long>(rgb.cols) * rgb.rows > header.header.pixels())
        return reply_error(out_fd, decoding_error(format, fmt::format("it decodes to {}×{} pixels, more than the {}×{} it declares",
                                                                      rgb.cols, rgb.rows, header.header.width,
                                                                      header.header.height)));
    const std::string line = fmt::format("ok {} {}\n", rgb.cols, rgb.rows);
    if (!write_fully(out_fd, line.data(), line.size())) return 1;
    for (int y = 0; y < rgb.rows; ++y)
        if (!write_fully(out_fd, reinterpret_cast<const char*>(rgb.ptr(y)), static_cast<size_t>(rgb.cols) * 3)) return 1;
    return 0;
}

}  // namespace cbir
