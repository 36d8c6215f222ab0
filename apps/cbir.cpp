// cbir: content-based image retrieval from the command line. Subcommands over lib/.
#include <vector>

#include "bench_command.h"
#include "cli_common.h"
#include "embed_command.h"
#include "index_command.h"
#include "more_commands.h"
#include "query_command.h"

int main(int argc, char** argv) {
    using namespace cbir::cli;
    using Adder = std::function<std::function<int()>(CLI::App&)>;
    const char* argv0 = argv[0];
    auto with_argv0 = [argv0](auto add) -> Adder { return [add, argv0](CLI::App& app) { return add(app, argv0); }; };
    // One row per subcommand: name, help, how its flags are added.
    struct Command {
        const char* name;
        const char* help;
        Adder add;
    };
    const std::vector<Command> commands = {
        {"index", "Embed every image under the given folders/files into the store", with_argv0(add_index_command)},
        {"query", "Print the nearest stored images of each query image", add_query_command},
        {"embed", "Print the feature vectors of images (jsonl, tsv) or write them (npy)", with_argv0(add_embed_command)},
        {"similarity", "Pairwise cosine similarity and squared L2 of images", with_argv0(add_similarity_command)},
        {"dups", "Near-duplicate groups within the store", add_dups_command},
        {"info", "The store's model, metric, index, counts and sizes (alias: stats)", add_info_command},
        {"eval", "Retrieval quality of the store on labelled images (P@k, mAP, ANN recall)", add_eval_command},
        {"reindex", "Rebuild the ANN index from the catalogue, or switch its kind", add_reindex_command},
        {"check", "Verify the store: catalogue, model, index file, a sample of searches", add_check_command},
        {"repair", "Rebuild the store's derived index from the catalogue, then check", add_repair_command},
        {"remove", "Remove images from the store (not from disk)", add_remove_command},
        {"prune", "Remove store entries whose files are gone", add_prune_command},
        {"export", "Write the vectors for Milvus bulk insert (milvus-npy) or FAISS (npy)", add_export_command},
        {"serve", "Serve the store over HTTP: search, add and remove images, a web page at /", add_serve_command},
        {"bench", "Measure inference, decoding, ANN indexes and synthetic stores (for scripts/bench-*)",
         with_argv0(add_bench_command)},
    };

    CLI::App app{"cbir: find similar images. Index folders of photos, then query with an image."};
    app.set_version_flag("--version", "cbir 0.1.0");
    app.require_subcommand(1);
    std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
    for (const auto& command : commands) {
        CLI::App* sub = app.add_subcommand(command.name, command.help);
        runners.emplace_back(sub, command.add(*sub));
    }
    app.get_subcommand("info")->alias("stats");
    ignore_sigpipe();  // a closed pipe is a failed write, ended quietly (finish_output)
    if (auto code = parse(app, argc, argv)) return *code;
    for (auto& [sub, run] : runners)
        if (sub->parsed()) return run();
    return kError;  // unreachable: CLI11 requires one subcommand
}
