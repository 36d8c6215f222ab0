// cbir: content-based image retrieval from the command line. Subcommands over lib/.
#include <cstdlib>
#include <vector>

#include <unistd.h>

#include "bench_command.h"
#include "cli_common.h"
#include "embed_command.h"
#include "index_command.h"
#include "more_commands.h"
#include "query_command.h"
#include "cluster/communicator.h"

namespace {

// LibTorch's OpenMP threads (libgomp) spin-wait between operators. While reader threads decode on
// the same cores, the spinning took the CPU the readers needed: 150 ms of CPU per 6 MP photo with
// two inference threads against 76 ms with the passive policy (cbir bench pipeline, 2 cores, CPU
// time, so independent of other load). libgomp reads the policy once, when it loads (before main:
// FAISS links it), so cbir sets it and executes itself again. A policy the user set is kept.
void passive_openmp_wait(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY")) return;
    if (::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    ::execv("/proc/self/exe", argv);  // returns only on failure: carry on with the spinning policy
}

}  // namespace

int main(int argc, char** argv) {
    passive_openmp_wait(argv);
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
    // CLI11 says "A subcommand is required" for both a missing and a mistyped command.
    if (argc < 2 || argv[1][0] != '-') {
        std::string names;
        for (const auto& command : commands) names += (names.empty() ? "" : ", ") + std::string(command.name);
        bool known = false;
        try {
            known = argc >= 2 && app.get_subcommand(argv[1]) != nullptr;  // names and aliases
        } catch (const CLI::OptionNotFound&) {
        }
        if (argc < 2) {
            print_error("no command given (commands: " + names + "; cbir --help says more)");
            return kError;
        }
        if (!known) {
            std::vector<std::string> all;
            for (const auto& command : commands) all.emplace_back(command.name);
            const std::string suggestion = command_suggestion(all, argv[1]);
            print_error(std::string("unknown command '") + argv[1] + "'" +
                        (suggestion.empty() ? " (commands: " + names + "; cbir --help says more)" : suggestion));
            return kError;
        }
    }
    ignore_sigpipe();  // a closed pipe is a failed write, ended quietly (finish_output)
    if (auto code = parse(app, argc, argv)) return *code;
    // index, query and serve share the work of an MPI job or Slurm step among its ranks, and bench
    // measures it (bench fanout); every other command is one process's work, done by rank 0 alone
    // (not once per rank).
    const auto job = cbir::job_placement_from_environment();
    for (auto& [sub, run] : runners) {
        if (!sub->parsed()) continue;
        const std::string name = sub->get_name();
        if (job && job->rank != 0 && name != "index" && name != "query" && name != "serve" && name != "bench") return kOk;
        return run();
    }
    return kError;  // unreachable: CLI11 requires one subcommand
}
