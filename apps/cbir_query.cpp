// cbir-query: the same as `cbir query`.
#include "cli_common.h"
#include "query_command.h"

int main(int argc, char** argv) {
    CLI::App app{"cbir-query: print the nearest stored images of each query image"};
    auto run = cbir::cli::add_query_command(app);
    cbir::cli::ignore_sigpipe();  // a closed pipe is a failed write, ended quietly (finish_output)
    if (auto code = cbir::cli::parse(app, argc, argv)) return *code;
    return run();
}
