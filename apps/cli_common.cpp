#include "cli_common.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "store/store.h"
#include "shard/store_set.h"
#include <fmt/format.h>
#include "util/error.h"
#include "util/cancel.h"
#include "util/log.h"

namespace cbir::cli {

void add_verbosity_flags(CLI::App& app, Verbosity& verbosity) {
    app.add_flag("-q,--quiet", verbosity.quiet, "Print only errors on stderr (no summary, no warnings)")
        ->envname("CBIR_QUIET");
    app.add_flag("-v,--verbose", verbosity.verbose, "Print more detail on stderr (timings of each step)")
        ->envname("CBIR_VERBOSE");
}

void apply_verbosity(const Verbosity& verbosity) {
    const LogLevel max_level = verbosity.quiet ? LogLevel::Error : verbosity.verbose ? LogLevel::Debug : LogLevel::Notice;
    set_log_sink([max_level](LogLevel level, const std::string& message) {
        if (level <= max_level) std::fprintf(stderr, "cbir: %s\n", message.c_str());
    });
}

std::filesystem::path resolve_store(const std::string& flag, bool for_writing) {
    if (!flag.empty()) return std::filesystem::absolute(flag).lexically_normal();
    if (auto found = Store::find_upward(std::filesystem::current_path())) return *found;
    if (for_writing) return std::filesystem::current_path() / kDefaultStoreDirName;
    throw Error("no cbir store found in this directory or above it; run 'cbir index DIR' first, or pass --store "
                "(or set CBIR_STORE)");
}

std::filesystem::path require_single_store(const std::filesystem::path& dir, const char* command) {
    if (StoreSet::exists(dir))
        throw Error(fmt::format("{}: is a store set; 'cbir {}' works on one store at a time, such as one shard "
                                "(--store {}), or on a store of the exported vectors",
                                dir.string(), command, StoreSet::open(dir).shard_dir(0).string()));
    return dir;
}

std::filesystem::path executable_dir(const char* argv0) {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) self = std::filesystem::absolute(argv0, ec);
    return self.parent_path();
}

std::optional<int> parse(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);  // prints the message and the hint to --help
        return kError;
    }
    return std::nullopt;
}

std::vector<std::filesystem::path> expand_inputs(const std::vector<std::string>& inputs, bool null_separated) {
    std::vector<std::filesystem::path> out;
    bool stdin_read = false;
    for (const auto& input : inputs) {
        if (input != "-") {
            out.emplace_back(input);
            continue;
        }
        if (stdin_read) continue;  // stdin can be read once
        stdin_read = true;
        const char separator = null_separated ? '\0' : '\n';
        std::string line;
        while (std::getline(std::cin, line, separator)) {
            if (!null_separated && !line.empty() && line.back() == '\r') line.pop_back();
            if (!line.empty()) out.emplace_back(line);
        }
    }
    return out;
}

void add_format_flag(CLI::App& app, std::string& format) {
    app.add_option("--format", format, "Output: table, tsv, csv, jsonl, json or paths (default: table on a terminal, "
                                       "tsv otherwise)")
        ->check(CLI::IsMember(output_format_names()))->envname("CBIR_FORMAT");
}

OutputFormat resolve_format(const std::string& flag) {
    if (!flag.empty()) return *parse_output_format(flag);
    return stdout_is_terminal() ? OutputFormat::Table : OutputFormat::Tsv;
}

void add_ivf_flags(CLI::App& app, int& nlist, int& pq_m, int& pq_bits) {
    app.add_option("--nlist", nlist, "IVF lists (0 = about 4 sqrt(N), at least 39 vectors per list)")
        ->check(CLI::Range(0, 1 << 20))->capture_default_str()->envname("CBIR_NLIST");
    app.add_option("--pq-m", pq_m, "IVF-PQ sub-quantizers (bytes per vector at 8 bits)")->check(CLI::Range(1, 1024))
        ->capture_default_str();
    app.add_option("--pq-bits", pq_bits, "IVF-PQ bits per sub-quantizer code")->check(CLI::Range(4, 12))
        ->capture_default_str();
}

CLI::Validator index_spec_validator() {
    return CLI::Validator(
        [](std::string& text) {
            std::string error;
            return parse_index_spec(text, IndexSpec{}, &error) ? std::string() : error;
        },
        "SPEC");
}

IndexSpec parse_index_flags(const std::string& text, int hnsw_m, int ef_construction, int nlist, int pq_m, int pq_bits) {
    IndexSpec defaults;
    defaults.hnsw_m = hnsw_m;
    defaults.hnsw_ef_construction = ef_construction;
    defaults.ivf_nlist = nlist;
    defaults.pq_m = pq_m;
    defaults.pq_bits = pq_bits;
    std::string error;
    auto spec = parse_index_spec(text, defaults, &error);
    if (!spec) throw Error(error);
    return *spec;
}

void add_precision_flag(CLI::App& app, std::string& precision) {
    app.add_option("--precision", precision,
                   "Inference precision: fp32, or bf16 (faster on CPUs with AVX512-BF16; vectors within ~1% of fp32)")
        ->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str()->envname("CBIR_PRECISION");
}

Precision parse_precision(const std::string& precision) {
    return precision == "bf16" ? Precision::BFloat16 : Precision::Float32;
}

void print_error(const std::string& message) { std::fprintf(stderr, "cbir: error: %s\n", message.c_str()); }
void print_error_message(const std::string& message) { print_error(message); }

void add_store_flag(CLI::App& app, std::string& store) {
    app.add_option("--store", store, "Store directory (default: the nearest .cbir in this directory or above)")
        ->envname("CBIR_STORE");
}

namespace {

// Process-wide: the watcher thread is detached and may outlive the command that started it.
int stop_pipe[2] = {-1, -1};
volatile sig_atomic_t stop_signals = 0;

extern "C" void on_stop_signal(int) {
    if (stop_signals++ > 0) _exit(kInterrupted);
    cbir::stop_requested() = true;
    const char byte = 1;
    [[maybe_unused]] ssize_t written = ::write(stop_pipe[1], &byte, 1);
}

}  // namespace

void stop_cleanly_on_signals(std::function<void()> on_stop) {
    if (stop_pipe[0] < 0 && ::pipe(stop_pipe) != 0) throw Error("cannot create a pipe for signal handling");
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    if (!on_stop) return;
    std::thread([on_stop = std::move(on_stop)] {
        char byte;
        while (::read(stop_pipe[0], &byte, 1) < 0 && errno == EINTR) {
        }
        on_stop();
    }).detach();
}

void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

int finish_output(int code) {
    std::cout.flush();
    std::fflush(stdout);
    if (!std::cout && errno == EPIPE) return kOk;
    return code;
}
bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }
bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace cbir::cli
