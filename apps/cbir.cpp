// cbir: content-based image retrieval from the command line. Subcommands over lib/.
#include "cli_common.h"
#include "index_command.h"
#include "query_command.h"

int main(int argc, char** argv) {
    CLI::App app{"cbir: find similar images. Index folders of photos, then query with an image."};
    app.set_version_flag("--version", "cbir 0.1.0");
    app.require_subcommand(1);
    auto* index = app.add_subcommand("index", "Embed every image under the given folders/files into the store");
    auto* query = app.add_subcommand("query", "Print the nearest stored images of each query image");
    auto run_index = cbir::cli::add_index_command(*index, argv[0]);
    auto run_query = cbir::cli::add_query_command(*query);
    if (auto code = cbir::cli::parse(app, argc, argv)) return *code;
    if (index->parsed()) return run_index();
    return run_query();
}
