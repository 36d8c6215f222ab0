#include "cli_common.h"

#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "options.h"
#include "cluster/communicator.h"
#include "store/store.h"
#include "shard/store_set.h"
#include <fmt/format.h>
#include "util/error.h"
#include "util/cancel.h"
#include "util/log.h"

namespace cbir::cli {

void add_verbosity_flags(CLI::App& app, Verbosity& verbosity) {
    app.add_flag("-q,--quiet", verbosity.quiet, "Print only errors and warnings on stderr (no summary, no notes)")
        ->envname("CBIR_QUIET");
    app.add_flag("-v,--verbose", verbosity.verbose, "Print more detail on stderr (timings of each step)")
        ->envname("CBIR_VERBOSE");
}

void apply_verbosity(const Verbosity& verbosity) {
    // -q keeps warnings (a damaged index being rebuilt, a server open to the network): it silences
    // summaries and notes, not what the user must know.
    const LogLevel max_level = verbosity.quiet ? LogLevel::Warning : verbosity.verbose ? LogLevel::Debug : LogLevel::Notice;
    set_log_sink([max_level](LogLevel level, const std::string& message) {
        if (level <= max_level) std::fprintf(stderr, "cbir: %s\n", message.c_str());
    });
}

namespace {

bool is_folder_of_other_files(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return false;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (name != "lock" && name.rfind("catalogue.sqlite", 0) != 0) return true;
    }
    return false;
}

}  // namespace

std::filesystem::path resolve_store(const std::string& flag, bool for_writing) {
    if (!flag.empty()) {
        std::filesystem::path dir = std::filesystem::absolute(flag).lexically_normal();
        if (dir.filename().empty()) dir = dir.parent_path();  // "photos/" -> "photos"
        if (Store::exists(dir) || StoreSet::exists(dir)) return dir;  // a store, or a set of them
        const std::filesystem::path inside = dir / kDefaultStoreDirName;
        if (Store::exists(inside) || (for_writing && is_folder_of_other_files(dir))) return inside;
        return dir;
    }
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

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// " (did you mean --top-k?)" for a flag a typo away from one of the command's, else "".
std::string flag_suggestion(const CLI::App& app, int argc, char** argv, const std::string& message) {
    const std::string marker = "expected: ";
    const size_t at = message.find(marker);
    if (at == std::string::npos || argc < 2) return {};
    const CLI::App* command = &app;
    try {
        command = app.get_subcommand(argv[1]);
    } catch (const CLI::OptionNotFound&) {
    }
    std::istringstream given(message.substr(at + marker.size()));
    std::string word;
    while (given >> word) {
        if (word.rfind("--", 0) != 0) continue;
        const std::string name = word.substr(2, word.find('=') == std::string::npos ? std::string::npos : word.find('=') - 2);
        std::string best;
        size_t best_distance = 3;  // at most two edits away
        for (const CLI::Option* option : command->get_options())
            for (const std::string& long_name : option->get_lnames())
                if (const size_t d = edit_distance(name, long_name); d < best_distance) {
                    best_distance = d;
                    best = long_name;
                }
        if (!best.empty()) return " (did you mean --" + best + "?)";
    }
    return {};
}

}  // namespace

std::string command_suggestion(const std::vector<std::string>& commands, const std::string& given) {
    std::string best;
    size_t best_distance = 3;
    for (const auto& command : commands)
        if (const size_t d = edit_distance(given, command); d < best_distance) {
            best_distance = d;
            best = command;
        }
    return best.empty() ? std::string() : " (did you mean " + best + "?)";
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
        // One line, as every error: CLI11's own print adds a second ("Run with --help …").
        std::string message = e.what();
        for (char& c : message)
            if (c == '\n') c = ' ';
        print_error(message + flag_suggestion(app, argc, argv, message));
        return kError;
    }
    return std::nullopt;
}

std::vector<std::filesystem::path> expand_inputs(const std::vector<std::string>& given, bool null_separated) {
    if (given.empty() && !null_separated)
        throw Error("no paths given: name them, or give - to read them from stdin (-0: NUL-separated)");
    const std::vector<std::string> inputs = given.empty() ? std::vector<std::string>{"-"} : given;
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

void require_named_paths_exist(const std::vector<std::string>& inputs) {
    for (const auto& input : inputs) {
        std::error_code ec;
        if (input != "-" && !std::filesystem::exists(std::filesystem::symlink_status(input, ec)))
            throw Error(input + ": no such file or folder");
    }
}

void require_image_files(const std::vector<std::filesystem::path>& images, const std::string& command) {
    for (const auto& image : images) {
        std::error_code ec;
        const auto status = std::filesystem::status(image, ec);
        if (std::filesystem::is_directory(status))
            throw Error(fmt::format("{}: is a folder; {} takes image files: 'cbir {} {}/*', or "
                                    "'find {} -type f | cbir {} -'",
                                    image.string(), command, command, image.string(), image.string(), command));
        if (!std::filesystem::exists(status)) throw Error(image.string() + ": no such file");
    }
}

// Which formats each command prints. `paths` needs a path column of results (query, dups);
// similarity, info and eval print pairs, facts and scores.
std::vector<std::string> formats_printed_by(const std::string& command) {
    static const std::map<std::string, std::vector<std::string>> table = {
        {"query", {"table", "tsv", "csv", "jsonl", "json", "paths"}},
        {"dups", {"table", "tsv", "csv", "jsonl", "json", "paths"}},
        {"similarity", {"table", "tsv", "csv", "jsonl", "json"}},
        {"info", {"table", "tsv", "csv", "jsonl", "json"}},
        {"eval", {"table", "tsv", "csv", "jsonl", "json"}},
    };
    return table.at(command);
}

namespace {

std::string listed_formats(const std::vector<std::string>& formats) {
    std::string listed;
    for (size_t i = 0; i < formats.size(); ++i)
        listed += (i == 0 ? "" : i + 1 == formats.size() ? " or " : ", ") + formats[i];
    return listed;
}

}  // namespace

void add_format_flag(CLI::App& app, std::string& format, const std::string& command) {
    // The check against the command's formats is resolve_format's: CLI11 validates an environment
    // variable for every subcommand, parsed or not, so CBIR_FORMAT=paths would fail `cbir info`
    // in the name of `similarity`.
    app.add_option("--format", format,
                   "Output: " + listed_formats(formats_printed_by(command)) + " (default: table on a terminal, tsv otherwise)")
        ->check(CLI::IsMember(output_format_names()))->envname("CBIR_FORMAT");
}

OutputFormat resolve_format(const std::string& flag, const std::string& command) {
    if (!flag.empty()) {
        const std::vector<std::string> formats = formats_printed_by(command);
        if (std::find(formats.begin(), formats.end(), flag) == formats.end())
            throw Error(fmt::format("--format {}: {} prints {}", flag, command, listed_formats(formats)));
        return *parse_output_format(flag);
    }
    return stdout_is_terminal() ? OutputFormat::Table : OutputFormat::Tsv;
}

void add_ivf_flags(CLI::App& app, int& nlist, int& pq_m, int& pq_bits) {
    app.add_option("--nlist", nlist, "IVF lists (0 = about 4 sqrt(N), at least 39 vectors per list)")
        ->check(in_range(0, 1 << 20))->capture_default_str()->envname("CBIR_NLIST");
    app.add_option("--pq-m", pq_m, "IVF-PQ sub-quantizers (bytes per vector at 8 bits)")->check(in_range(1, 1024))
        ->capture_default_str();
    app.add_option("--pq-bits", pq_bits, "IVF-PQ bits per sub-quantizer code")->check(in_range(4, 12))
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
                   "fp32|bf16|int8|auto. Default: an existing store's own precision (a store always runs in it; "
                   "another is refused), fp32 for a new one. fp32 reproduces the PyTorch pipeline; bf16 is "
                   "faster where the CPU has native bf16 (AVX512-BF16/AMX; slower than fp32 without it): 1.5x inference on "
                   "the machine the README measured, vectors within ~1%; int8 comes with a quantized model "
                   "(scripts/export_resnet18.py --int8): 2.9x inference there, vectors within ~5% (README: Speed). auto: int8 for an int8 model, else bf16 on a CPU with native "
                   "bf16, else fp32")
        ->check(CLI::IsMember({"fp32", "bf16", "int8", "auto"}))->envname("CBIR_PRECISION");
}

PrecisionRequest parse_precision(const std::string& precision) {
    return parse_precision_request(precision).value_or(PrecisionRequest::Default);
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
// A rank of an MPI job writes to the launcher's pseudo-terminal (Open MPI forwards output through
// one) whether or not mpirun's own output is a terminal: a rank never assumes a terminal, so
// `mpirun … cbir query … > hits.tsv` prints what one process would into a file.
bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1 && !job_placement_from_environment(); }
bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1 && !job_placement_from_environment(); }

}  // namespace cbir::cli
