#include "embed_command.h"

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "options.h"
#include "output/npy_writer.h"
#include "pipeline/embed_files.h"
#include "pipeline/model_resolution.h"
#include "util/byte_text.h"
#include "util/error.h"

namespace cbir::cli {
namespace {

struct EmbedFlags {
    std::vector<std::string> inputs;
    bool null_separated = false;
    std::string model;
    std::string format;  // default: npy for -o FILE.npy, else jsonl
    std::string output;
    int batch = 8;
    int threads = 0;
    int readers = 0;
    std::string precision;
    bool fast_decode = false;
    Verbosity verbosity;
};

// What to write, decided before any model is loaded: -o names a .npy file; jsonl and tsv go to stdout.
std::string output_format(const EmbedFlags& flags) {
    const bool npy_file = std::filesystem::path(flags.output).extension() == ".npy";
    if (flags.format.empty()) {
        if (flags.output.empty()) return "jsonl";
        if (!npy_file)
            throw Error(flags.output + ": --output writes .npy files (an [N, D] float32 matrix); jsonl and tsv are "
                                       "printed on stdout (redirect them)");
        return "npy";
    }
    if (flags.format == "npy" && flags.output.empty())
        throw Error("--format npy writes a file: give it with --output FILE.npy");
    if (flags.format != "npy" && !flags.output.empty())
        throw Error("--output goes with --format npy; " + flags.format + " is printed on stdout (redirect it)");
    return flags.format;
}

int run(EmbedFlags flags, const std::filesystem::path& exe_dir) {
    apply_verbosity(flags.verbosity);
    flags.format = output_format(flags);
    EmbedFilesOptions options;
    if (!flags.model.empty()) options.model = flags.model;
    options.executable_dir = exe_dir;
    options.batch = flags.batch;
    options.threads = flags.threads;
    options.reader_threads = flags.readers;
    options.precision = parse_precision(flags.precision);
    require_named_paths_exist(flags.inputs);
    options.preprocessing = preprocessing_for(flags.fast_decode);
    size_t failed = 0;
    const auto inputs = expand_inputs(flags.inputs, flags.null_separated);
    const auto embedded = embed_files(inputs, options, [&](const std::filesystem::path& path, const std::string& why) {
        ++failed;
        std::fprintf(stderr, "cbir: skipped %s: %s\n", path.c_str(), why.c_str());
    });
    if (flags.format == "npy") {
        const size_t dimension = embedded.empty() ? 0 : embedded.front().vector.size();
        std::vector<float> matrix;
        matrix.reserve(embedded.size() * dimension);
        for (const auto& e : embedded) matrix.insert(matrix.end(), e.vector.begin(), e.vector.end());
        write_npy_float32(flags.output, matrix, embedded.size(), dimension);
        for (const auto& e : embedded) std::cout << e.path.string() << '\n';  // row i of the matrix
    } else {
        for (const auto& e : embedded) {
            if (flags.format == "tsv") {
                std::cout << e.path.string();
                for (float v : e.vector) std::cout << '\t' << fmt::format("{}", v);
                std::cout << '\n';
            } else {
                nlohmann::ordered_json row;
                set_text_field(row, "path", e.path.string());
                row["vector"] = e.vector;
                std::cout << dump_json(row) << '\n';
            }
        }
    }
    if (failed) return kError;
    if (embedded.empty()) {
        if (!flags.verbosity.quiet) std::fprintf(stderr, "cbir: no images found (nothing to embed)\n");
        return kNoResults;
    }
    return kOk;
}

}  // namespace

std::function<int()> add_embed_command(CLI::App& app, const char* argv0) {
    auto flags = std::make_shared<EmbedFlags>();
    app.add_option("inputs", flags->inputs, "Images, or folders walked recursively; - reads paths from stdin");
    add_null_option(app, flags->null_separated, "Paths on stdin are NUL-separated");
    add_model_option(app, flags->model, "TorchScript model (default: models/resnet18-*.pt)");
    app.add_option("--format", flags->format,
                   "jsonl ({path, vector} per line; the default), tsv (path then values), or npy (with -o)")
        ->check(CLI::IsMember({"jsonl", "tsv", "npy"}));
    app.add_option("-o,--output", flags->output, "The .npy file ([N, D] float32; implies --format npy); the paths of "
                                                 "its rows are printed on stdout");
    add_batch_option(app, flags->batch);
    add_threads_option(app, flags->threads);
    add_readers_option(app, flags->readers);
    add_precision_flag(app, flags->precision);
    add_fast_decode_flag(app, flags->fast_decode, "Vectors then match a --fast-decode store's");
    add_verbosity_flags(app, flags->verbosity);
    const std::filesystem::path exe_dir = executable_dir(argv0);
    return guarded_command([flags, exe_dir] { return run(*flags, exe_dir); });
}

}  // namespace cbir::cli
