// `cbir export`: hands a store's or a set's vectors to Milvus (bulk insert) or to FAISS tools.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli_common.h"
#include "more_commands.h"
#include "export/vector_export.h"
#include "util/error.h"
#include "util/words.h"

namespace cbir::cli {
namespace {

struct ExportFlags {
    std::string store;
    std::string format;
    std::string output;
    size_t rows_per_part = ExportOptions{}.rows_per_part;
    Verbosity verbosity;
};

int run(const ExportFlags& flags) {
    apply_verbosity(flags.verbosity);
    if (flags.format.empty())
        throw cbir::Error("--format is required: milvus-npy (Milvus bulk-insert folders and schema.json) or npy "
                    "(vectors.npy, ids.npy and paths.npy for FAISS)");
    ExportOptions options;
    options.output = flags.output;
    options.format = flags.format == "npy" ? ExportFormat::Npy : ExportFormat::MilvusNpy;
    options.rows_per_part = flags.rows_per_part;
    const auto store = resolve_store(flags.store, /*for_writing=*/false);
    const ExportSummary s = export_vectors(store, options);
    if (s.paths_not_utf8)
        print_error(fmt::format("warning: {} paths are not UTF-8; they are written with U+FFFD in place of each bad byte",
                                s.paths_not_utf8));
    if (!flags.verbosity.quiet)
        std::fprintf(stderr, "%s\n",
                     fmt::format("cbir: exported {} of {} dimensions from {} to {} ({})", counted(s.rows, "vector"),
                                 s.dimension, store.string(), options.output.string(), counted(s.parts, "part"))
                         .c_str());
    return s.rows ? kOk : kNoResults;
}

}  // namespace

std::function<int()> add_export_command(CLI::App& app) {
    auto flags = std::make_shared<ExportFlags>();
    add_store_flag(app, flags->store);
    app.add_option("--format", flags->format,
                   "milvus-npy: Milvus bulk-insert folders (id.npy, path.npy, embedding.npy) and schema.json; npy: "
                   "vectors.npy, ids.npy and paths.npy for FAISS")
        ->check(CLI::IsMember({"milvus-npy", "npy"}));  // required, said with its values in run()
    app.add_option("-o,--output", flags->output, "Folder to write (created if missing)")->required();
    app.add_option("--rows-per-part", flags->rows_per_part, "milvus-npy: rows per part folder at most [4000000]")
        ->check(CLI::Range(size_t{1}, size_t{100'000'000}));
    add_verbosity_flags(app, flags->verbosity);
    return guarded_command([flags] { return run(*flags); });
}

}  // namespace cbir::cli
