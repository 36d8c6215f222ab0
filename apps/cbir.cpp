// cbir: content-based image retrieval from the command line. Subcommands over lib/.
#include "bench_command.h"
#include "cli_common.h"
#include "embed_command.h"
#include "index_command.h"
#include "more_commands.h"
#include "query_command.h"

int main(int argc, char** argv) {
    CLI::App app{"cbir: find similar images. Index folders of photos, then query with an image."};
    app.set_version_flag("--version", "cbir 0.1.0");
    app.require_subcommand(1);
    auto* index = app.add_subcommand("index", "Embed every image under the given folders/files into the store");
    auto* query = app.add_subcommand("query", "Print the nearest stored images of each query image");
    auto* embed = app.add_subcommand("embed", "Print the feature vectors of images (jsonl, tsv) or write them (npy)");
    auto* bench = app.add_subcommand("bench", "Measure inference, decoding and synthetic stores (for scripts/bench-*)");
    auto* similarity = app.add_subcommand("similarity", "Pairwise cosine similarity and squared L2 of images");
    auto* dups = app.add_subcommand("dups", "Near-duplicate groups within the store");
    auto* info = app.add_subcommand("info", "The store's model, metric, index, counts and sizes (alias: stats)");
    info->alias("stats");
    auto* reindex = app.add_subcommand("reindex", "Rebuild the ANN index from the catalogue, or switch its kind");
    auto* check = app.add_subcommand("check", "Verify the store: catalogue, model, index file, a sample of searches");
    auto* repair = app.add_subcommand("repair", "Rebuild the store's derived index from the catalogue, then check");
    auto* remove = app.add_subcommand("remove", "Remove images from the store (not from disk)");
    auto* prune = app.add_subcommand("prune", "Remove store entries whose files are gone");
    auto* eval = app.add_subcommand("eval", "Retrieval quality of the store on labelled images (P@k, mAP, ANN recall)");
    auto run_index = cbir::cli::add_index_command(*index, argv[0]);
    auto run_query = cbir::cli::add_query_command(*query);
    auto run_embed = cbir::cli::add_embed_command(*embed, argv[0]);
    auto run_bench = cbir::cli::add_bench_command(*bench, argv[0]);
    auto run_similarity = cbir::cli::add_similarity_command(*similarity, argv[0]);
    auto run_dups = cbir::cli::add_dups_command(*dups);
    auto run_info = cbir::cli::add_info_command(*info);
    auto run_eval = cbir::cli::add_eval_command(*eval);
    auto run_reindex = cbir::cli::add_reindex_command(*reindex);
    auto run_check = cbir::cli::add_check_command(*check);
    auto run_repair = cbir::cli::add_repair_command(*repair);
    auto run_remove = cbir::cli::add_remove_command(*remove);
    auto run_prune = cbir::cli::add_prune_command(*prune);
    if (auto code = cbir::cli::parse(app, argc, argv)) return *code;
    if (index->parsed()) return run_index();
    if (embed->parsed()) return run_embed();
    if (bench->parsed()) return run_bench();
    if (similarity->parsed()) return run_similarity();
    if (dups->parsed()) return run_dups();
    if (info->parsed()) return run_info();
    if (eval->parsed()) return run_eval();
    if (reindex->parsed()) return run_reindex();
    if (check->parsed()) return run_check();
    if (repair->parsed()) return run_repair();
    if (remove->parsed()) return run_remove();
    if (prune->parsed()) return run_prune();
    return run_query();
}
