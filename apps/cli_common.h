#pragma once
// What the three mains share: the exit codes, store resolution, logging flags and the CLI11 error
// handling. Everything here is about the command line; the work is in lib/.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <functional>

#include "embed/embedder.h"
#include "index/index_spec.h"
#include "output/printer.h"

namespace cbir::cli {

// Documented in the README.
void print_error_message(const std::string& message);  // see print_error below

enum ExitCode : int { kOk = 0, kNoResults = 1, kError = 2, kInterrupted = 130 };

// The one shutdown mechanism. The first SIGINT/SIGTERM sets cbir::stop_requested(), which long
// operations poll at safe points (committed work is kept), and runs `on_stop`, when given, on a
// watcher thread (the handler itself only writes a byte to a pipe: any thread may receive the
// signal, and OpenBLAS starts its own at load). A second signal ends the process at once (130).
void stop_cleanly_on_signals(std::function<void()> on_stop = {});

struct Verbosity {
    bool quiet = false;
    bool verbose = false;
};
void add_verbosity_flags(CLI::App& app, Verbosity& verbosity);
void apply_verbosity(const Verbosity& verbosity);  // sets the library's log sink

// --store / CBIR_STORE, else the nearest .cbir upward, else (when creating) ./.cbir. A --store
// naming the folder that holds a .cbir (`--store .`) means that .cbir; so does one naming a folder of
// other files when a store is to be made there (the catalogue never lands among someone's photos).
std::filesystem::path resolve_store(const std::string& flag, bool for_writing);
// For commands that work on one store at a time (dups, eval, serve): a set is refused, naming a shard.
std::filesystem::path require_single_store(const std::filesystem::path& dir, const char* command);

std::filesystem::path executable_dir(const char* argv0);

// Parses argv; on a usage error prints it and returns kError, on --help returns kOk.
std::optional<int> parse(CLI::App& app, int argc, char** argv);
// " (did you mean query?)" for a command a typo or two away from one of `commands`, else "".
std::string command_suggestion(const std::vector<std::string>& commands, const std::string& given);

// Inputs as given, with "-" replaced by the paths read from stdin (newline-separated, or
// NUL-separated with null_separated), so that `find … | cbir index -` works. No inputs at all with
// -0 means stdin (`find -print0 | cbir query -0`); without it, no inputs is an error.
std::vector<std::filesystem::path> expand_inputs(const std::vector<std::string>& inputs, bool null_separated);

// Paths named on the command line (not "-") must exist: a typo is an error (exit 2), not a run that
// does nothing. Files that vanish during a walk, or are listed on stdin, stay skips.
void require_named_paths_exist(const std::vector<std::string>& inputs);

// Query images are checked before the model loads: each must be a file (a folder is named as one,
// with how to query its images).
void require_image_files(const std::vector<std::filesystem::path>& images, const std::string& command);

// --format, with the same environment variable everywhere and the choices `command` can print
// (formats_printed_by): a format a command cannot print is refused, not printed as nothing.
void add_format_flag(CLI::App& app, std::string& format, const std::string& command);
std::vector<std::string> formats_printed_by(const std::string& command);
// The chosen format: the flag's (refused when `command` cannot print it), else a table on a
// terminal and tab-separated values in a pipe.
OutputFormat resolve_format(const std::string& flag, const std::string& command);

// --nlist, --pq-m, --pq-bits: IVF parameters given apart from the --index string.
void add_ivf_flags(CLI::App& app, int& nlist, int& pq_m, int& pq_bits);
// Checks an --index value at parse time, so a bad one is a usage error (exit 2).
CLI::Validator index_spec_validator();
// --index text with the separate parameter flags as its defaults; throws cbir::Error if invalid.
IndexSpec parse_index_flags(const std::string& text, int hnsw_m, int ef_construction, int nlist, int pq_m, int pq_bits);

// --precision fp32|bf16|int8|auto, shared by every command that runs the model.
void add_precision_flag(CLI::App& app, std::string& precision);
PrecisionRequest parse_precision(const std::string& precision);

// The exit code once a command's output is flushed: a reader that went away (`cbir query … | head`)
// is not an error (SIGPIPE is ignored; the write fails with EPIPE).
int finish_output(int code);

// Wraps a command's body: any exception becomes one "cbir: error: …" line and exit code 2; the
// output's end is handled by finish_output.
template <typename Body>
std::function<int()> guarded_command(Body body) {
    return [body]() -> int {
        try {
            return finish_output(body());
        } catch (const std::exception& e) {
            print_error_message(e.what());
            return finish_output(kError);
        }
    };
}

// --store / CBIR_STORE, the same wording everywhere.
void add_store_flag(CLI::App& app, std::string& store);

// Prints "cbir: <message>" on stderr.
void print_error(const std::string& message);

// Ignore SIGPIPE so that a closed pipe is a write error we can end quietly on, as `| head` expects.
void ignore_sigpipe();
bool stdout_is_terminal();
bool stderr_is_terminal();

}  // namespace cbir::cli
