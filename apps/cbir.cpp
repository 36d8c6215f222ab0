// cbir: content-based image retrieval from the command line. Subcommands over lib/.
#include "bench_command.h"
#include "cli_common.h"
#include "embed_command.h"
#include "index_command.h"
#include "query_command.h"

int main(int argc, char** argv) {
    CLI::App app{"cbir: find similar images. Index folders of photos, then query with an image."};
    app.set_version_flag("--version", "cbir 0.1.0");
    app.require_subcommand(1);
    auto* index = app.add_subcommand("index", "Embed every image under the given folders/files into the store");
    auto* query = app.add_subcommand("query", "Print the nearest stored images of each query image");
    auto* embed = app.add_subcommand("embed", "Print the feature vectors of images (jsonl, tsv) or write them (npy)");
    auto* bench = app.add_subcommand("bench", "Measure inference, decoding and synthetic stores (for scripts/bench-*)");
    auto run_index = cbir::cli::add_index_command(*index, argv[0]);
    auto run_query = cbir::cli::add_query_command(*query);
    auto run_embed = cbir::cli::add_embed_command(*embed, argv[0]);
    auto run_bench = cbir::cli::add_bench_command(*bench, argv[0]);
    if (auto code = cbir::cli::parse(app, argc, argv)) return *code;
    if (index->parsed()) return run_index();
    if (embed->parsed()) return run_embed();
    if (bench->parsed()) return run_bench();
    return run_query();
}
