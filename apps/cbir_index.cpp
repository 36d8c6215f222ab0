// cbir-index: the same as `cbir index`.
#include "cli_common.h"
#include "index_command.h"

int main(int argc, char** argv) {
    CLI::App app{"cbir-index: embed every image under the given folders/files into the store"};
    auto run = cbir::cli::add_index_command(app, argv[0]);
    cbir::cli::ignore_sigpipe();  // a closed pipe is a failed write, ended quietly (finish_output)
    if (auto code = cbir::cli::parse(app, argc, argv)) return *code;
    return run();
}
