// `cbir serve`: the store as a long-running HTTP service (lib/serve). This file parses flags, wires
// signals to a clean shutdown and prints where the service listens.
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "cli_common.h"
#include "more_commands.h"
#include "options.h"
#include "cluster/communicator.h"
#include "serve/http_api.h"
#include "serve/search_service.h"
#include "serve/set_backend.h"
#include "shard/store_set.h"
#include "util/words.h"
#include "util/cancel.h"
#include "util/log.h"

namespace cbir::cli {
namespace {

struct ServeFlags {
    std::string store;
    std::string model;
    std::string host = "127.0.0.1";
    int port = 19121;
    std::vector<std::string> roots;
    int threads = 0;
    int batch = 8;
    int request_threads = 8;
    int max_connections = 128;
    double request_timeout = 30;
    std::vector<std::string> allowed_hosts;
    int max_body_mb = 64;
    int save_interval = 60;
    std::string precision;
    bool fast_decode = false;
    Verbosity verbosity;
};

// The server the signal watcher stops; process-wide (the watcher is detached and may outlive a
// failed start) and under the mutex, so that a stop in progress ends before the server goes.
std::mutex running_api_mutex;
HttpApi* running_api = nullptr;

// Each connection holds a descriptor: the soft limit (often 1024) is raised as far as the hard one
// allows when --max-connections needs it, with room for the store, the model and the logs.
void allow_descriptors_for(int connections) {
    struct rlimit limit {};
    const rlim_t needed = static_cast<rlim_t>(connections) + 256;
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= needed) return;
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? needed : std::min(needed, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
}

bool is_loopback(const std::string& host) {
    return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

HttpOptions http_options(const ServeFlags& flags) {
    allow_descriptors_for(flags.max_connections);
    HttpOptions http;
    http.host = flags.host;
    http.port = flags.port;
    http.max_body_bytes = static_cast<size_t>(flags.max_body_mb) << 20;
    http.request_threads = flags.request_threads;
    http.max_connections = flags.max_connections;
    http.request_timeout_seconds = flags.request_timeout;
    http.allowed_hosts = flags.allowed_hosts;
    return http;
}

// Registered with the signal watcher for its life (before `api` goes, on every path out).
class RunningApi {
public:
    explicit RunningApi(HttpApi& api) {
        std::lock_guard<std::mutex> lock(running_api_mutex);
        running_api = &api;
    }
    ~RunningApi() {
        std::lock_guard<std::mutex> lock(running_api_mutex);
        running_api = nullptr;
    }
};

void warn_if_exposed(const ServeFlags& flags) {
    if (!is_loopback(flags.host))
        log_warning(fmt::format("listening on {}: anyone who can reach this machine can search and change the store "
                                "(there is no authentication; clients naming it by a host name need --allow-host NAME)",
                                flags.host));
}

// Printed even with -q: where the service listens is its result (with --port 0, the only way to
// learn the port), not chatter.
void say_where(const ServeFlags& flags, const std::string& what, int port) {
    const std::string shown_host = flags.host.find(':') != std::string::npos ? "[" + flags.host + "]" : flags.host;
    std::fprintf(stderr, "cbir: %s\n",
                 fmt::format("serving {} at http://{}:{}/ (Ctrl-C stops)", what, shown_host, port).c_str());
    std::fflush(stderr);
}

int serve_store(const ServeFlags& flags, ServiceOptions options) {
    options.one_shot_embedder = true;  // for `cbir query` through the local socket
    auto service = SearchService::open(options);
    if (cbir::stop_requested()) return kOk;
    HttpOptions http = http_options(flags);
    http.local_socket_store = service->status().store_dir;
    HttpApi api(*service, http);
    const int port = api.bind();
    RunningApi registered(api);
    if (cbir::stop_requested()) api.stop();
    warn_if_exposed(flags);
    const ServiceStatus status = service->status();
    say_where(flags, fmt::format("{} ({}, {} index)", status.store_dir.string(), counted(status.images, "image"), status.index_kind),
              port);
    api.run();
    service->close();
    const ServiceStatus final_status = service->status();
    log_notice(fmt::format("stopped; {} in the store, index file at catalogue generation {}", counted(final_status.images, "image"),
                            final_status.saved_generation));
    return kOk;
}

// A set, by one process or by every rank of an MPI job (serve/set_backend.h). Rank 0 answers HTTP on
// a thread of its own; this thread, which joined MPI, makes every MPI call.
int serve_set(const ServeFlags& flags, ServiceOptions options) {
    const auto placement = job_placement_from_environment();
    const StoreSet set = StoreSet::open(options.store_dir);
    if (placement && !placement->mpi)
        throw Error(fmt::format("{}: a set is served by {} ranks only in an MPI job (mpirun, or srun --mpi=pmix)",
                                options.store_dir.string(), placement->size));
    std::unique_ptr<Communicator> job = placement ? join_mpi_job() : nullptr;
    const int rank = job ? job->rank() : 0;
    const int ranks = job ? job->size() : 1;
    // Files are added by path from under the folder holding the set, as one store's default is the
    // folder holding it (a shard's would be the set's own folder).
    if (options.roots.empty()) options.roots.push_back(std::filesystem::absolute(set.dir()).lexically_normal().parent_path());

    // Every rank opens its shards (rank 0 also binds its port) and the job starts only if all could.
    std::string failure;
    std::unique_ptr<ShardHost> host;
    std::unique_ptr<SetBackend> backend;
    std::unique_ptr<HttpApi> api;
    int port = 0;
    try {
        host = std::make_unique<ShardHost>(set, shards_of_task(set.shards(), rank, ranks), options);
        if (rank == 0) {
            backend = std::make_unique<SetBackend>(*host, job.get());
            api = std::make_unique<HttpApi>(*backend, http_options(flags));
            port = api->bind();
        }
    } catch (const std::exception& e) {
        failure = e.what();
    }
    const std::string verdict = agree_to_start(job.get(), failure);
    if (!verdict.empty()) {
        api.reset();
        backend.reset();
        host.reset();
        job.reset();
        if (rank != 0) return kError;  // rank 0 reports it
        throw Error(ranks > 1 ? verdict : failure);
    }
    if (rank != 0) {
        follow_operations(*host, *job);
        host->close();
        job.reset();
        return kOk;
    }

    RunningApi registered(*api);
    if (cbir::stop_requested()) api->stop();
    warn_if_exposed(flags);
    std::exception_ptr http_failure;
    std::thread http([&] {
        try {
            const ServiceStatus status = backend->status();
            say_where(flags,
                      fmt::format("set {} ({} in {} on {}, {} index)", status.store_dir.string(),
                                  counted(status.images, "image"), counted(status.shards, "shard"),
                                  counted(status.ranks, "rank"), status.index_kind),
                      port);
            api->run();
        } catch (...) {
            http_failure = std::current_exception();
        }
        backend->finish();
    });
    backend->run();  // until the HTTP server has stopped; then every rank closes its shards
    http.join();
    host->close();
    job.reset();
    if (http_failure) std::rethrow_exception(http_failure);
    log_notice(fmt::format("stopped; every shard of {} closed and its index saved", set.dir().string()));
    return kOk;
}

int run(const ServeFlags& flags) {
    apply_verbosity(flags.verbosity);
    // A second signal ends the process at once: the catalogue is committed per request, and the index
    // file catches up later.
    stop_cleanly_on_signals([] {
        log_notice("stopping: finishing requests in flight, then saving the index (a second signal ends at once)");
        std::lock_guard<std::mutex> lock(running_api_mutex);
        if (running_api) running_api->stop();
    });

    ServiceOptions options;
    options.store_dir = resolve_store(flags.store, /*for_writing=*/false);
    if (!flags.model.empty()) options.model = flags.model;
    for (const auto& root : flags.roots) options.roots.emplace_back(root);
    options.threads = flags.threads;
    options.batch = flags.batch;
    options.precision = parse_precision(flags.precision);
    options.fast_decode = flags.fast_decode;
    options.save_interval_seconds = flags.save_interval;
    if (StoreSet::exists(options.store_dir)) return serve_set(flags, options);
    // One store in an MPI job: rank 0 serves it alone.
    if (const auto placement = job_placement_from_environment(); placement && placement->rank != 0) return kOk;
    return serve_store(flags, options);
}

}  // namespace

std::function<int()> add_serve_command(CLI::App& app) {
    auto flags = std::make_shared<ServeFlags>();
    add_store_flag(app, flags->store);
    add_model_option(app, flags->model, "Model to embed with (must be the store's; default: the store's)");
    app.add_option("--host", flags->host, "Address to listen on (loopback by default; 0.0.0.0 exposes the store)")
        ->capture_default_str()->envname("CBIR_HOST");
    app.add_option("--port", flags->port, "Port to listen on (0: any free port, printed at start)")
        ->check(in_range(0, 65535))->capture_default_str()->envname("CBIR_PORT");
    app.add_option("--root", flags->roots,
                   "Folder whose files POST /images may add by path (repeatable; default: the folder holding the store)")
        ->check(CLI::ExistingDirectory);
    add_threads_option(app, flags->threads);
    add_batch_option(app, flags->batch, "Most uploaded images embedded in one forward pass");
    app.add_option("--request-threads", flags->request_threads,
                   "Requests worked on at once (decoding, embedding, searching, reading files)")
        ->check(in_range(1, 1024))->capture_default_str();
    app.add_option("--max-connections", flags->max_connections,
                   "Open connections at most (past it the longest-idle one is closed, or 503 when all are busy)")
        ->check(in_range(1, 4096))->capture_default_str();
    app.add_option("--request-timeout", flags->request_timeout,
                   "Seconds a request's headers and body may take to arrive (then 408)")
        ->check(in_range(0.1, 3600.0))->capture_default_str();
    app.add_option("--allow-host", flags->allowed_hosts,
                   "Host name clients may use besides IP addresses, localhost and --host (repeatable; e.g. the "
                   "name of a reverse proxy)");
    app.add_option("--max-body-mb", flags->max_body_mb, "Largest request body accepted, in MiB (larger: 413)")
        ->check(in_range(1, 4096))->capture_default_str();
    app.add_option("--save-interval", flags->save_interval,
                   "Seconds between writes of a changed index file (0: only at shutdown)")
        ->check(in_range(0, 86400))->capture_default_str();
    add_precision_flag(app, flags->precision);
    add_fast_decode_flag(app, flags->fast_decode, "Only for a store built with it, which implies it");
    add_verbosity_flags(app, flags->verbosity);
    return guarded_command([flags] { return run(*flags); });
}

}  // namespace cbir::cli
