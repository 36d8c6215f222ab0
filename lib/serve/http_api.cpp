#include "serve/http_api.h"

#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <limits>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "image/image_file.h"
#include "image/thumbnail.h"
#include "serve/web_page.h"
#include "util/log.h"

namespace cbir {
namespace {

using json = nlohmann::json;

// Request start times, per worker thread: httplib handles a request start to end on one thread.
thread_local std::chrono::steady_clock::time_point request_started;

void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
    send_json(res, status, json{{"error", message}, {"status", status}});
}

// "/images/17/file" -> "GET /images/{id}/file": statistics per route, not per URL.
std::string route_of(const httplib::Request& req) {
    std::string path = req.path;
    if (path.rfind("/images/", 0) == 0) {
        const auto ends_with = [&](const std::string& tail) {
            return path.size() > tail.size() && path.compare(path.size() - tail.size(), tail.size(), tail) == 0;
        };
        path = ends_with("/file") ? "/images/{id}/file" : ends_with("/thumbnail") ? "/images/{id}/thumbnail" : "/images/{id}";
    } else if (path != "/" && path != "/search" && path != "/images" && path != "/stats" && path != "/health") {
        path = "(other)";
    }
    return req.method + " " + path;
}

int to_int(const std::string& text, const char* name) {
    try {
        size_t used = 0;
        const long long value = std::stoll(text, &used);
        if (used != text.size() || value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max())
            throw std::invalid_argument(name);
        return static_cast<int>(value);
    } catch (const std::exception&) {
        throw RequestError(400, fmt::format("{} must be an integer, not \"{}\"", name, text));
    }
}

float to_float(const std::string& text, const char* name) {
    try {
        size_t used = 0;
        const float value = std::stof(text, &used);
        if (used != text.size()) throw std::invalid_argument(name);
        return value;
    } catch (const std::exception&) {
        throw RequestError(400, fmt::format("{} must be a number, not \"{}\"", name, text));
    }
}

// A POST body, read by the route itself: httplib would otherwise parse (and cap at 8 KiB) any body sent
// as application/x-www-form-urlencoded, which is what `curl --data-binary @photo.jpg` sends.
struct Body {
    std::string raw;
    std::vector<httplib::MultipartFormData> parts;
    const httplib::MultipartFormData* part(const std::string& name) const {
        for (const auto& p : parts)
            if (p.name == name) return &p;
        return nullptr;
    }
};

Body read_body(const httplib::Request& req, const httplib::ContentReader& reader, size_t max_bytes) {
    const std::string length = req.get_header_value("Content-Length");
    if (!length.empty() && std::strtoull(length.c_str(), nullptr, 10) > max_bytes)
        throw RequestError(413, fmt::format("request body of {} bytes is larger than the {} allowed (cbir serve --max-body-mb)",
                                            length, max_bytes));
    Body body;
    bool complete = false;
    if (req.is_multipart_form_data()) {
        complete = reader(
            [&](const httplib::MultipartFormData& header) {
                body.parts.push_back(header);
                return true;
            },
            [&](const char* data, size_t size) {
                body.parts.back().content.append(data, size);
                return true;
            });
    } else {
        complete = reader([&](const char* data, size_t size) {
            body.raw.append(data, size);
            return true;
        });
    }
    if (!complete) throw RequestError(400, "the request body could not be read (cut short, malformed or too large)");
    return body;
}

// k, ef, nprobe and max_distance from the query string, then from multipart fields.
SearchRequest search_request_from(const httplib::Request& req, const Body& body) {
    SearchRequest request;
    auto field = [&](const char* name) -> std::optional<std::string> {
        if (req.has_param(name)) return req.get_param_value(name);
        if (const auto* part = body.part(name)) return part->content;
        return std::nullopt;
    };
    if (auto v = field("k")) request.k = to_int(*v, "k");
    if (auto v = field("ef")) request.ef = to_int(*v, "ef");
    if (auto v = field("nprobe")) request.nprobe = to_int(*v, "nprobe");
    if (auto v = field("max_distance")) request.max_distance = to_float(*v, "max_distance");
    return request;
}

json parse_json_body(const Body& request_body) {
    try {
        json body = json::parse(request_body.raw);
        if (!body.is_object()) throw RequestError(400, "the JSON body must be an object");
        return body;
    } catch (const json::exception& e) {
        throw RequestError(400, std::string("the body is not valid JSON: ") + e.what());
    }
}

int json_int(const json& body, const char* name) {
    const json& value = body.at(name);
    if (!value.is_number_integer() || value.get<long long>() < std::numeric_limits<int>::min() ||
        value.get<long long>() > std::numeric_limits<int>::max())
        throw RequestError(400, fmt::format("\"{}\" must be an integer", name));
    return value.get<int>();
}

// JSON fields override the query string: {"k": 5, "ef": 128, "nprobe": 32, "max_distance": 30}.
void apply_json_fields(const json& body, SearchRequest& request) {
    if (body.contains("k")) request.k = json_int(body, "k");
    if (body.contains("ef")) request.ef = json_int(body, "ef");
    if (body.contains("nprobe")) request.nprobe = json_int(body, "nprobe");
    if (body.contains("max_distance") && !body.at("max_distance").is_null()) {
        if (!body.at("max_distance").is_number()) throw RequestError(400, "\"max_distance\" must be a number");
        request.max_distance = body.at("max_distance").get<float>();
    }
}

bool is_json(const httplib::Request& req) {
    return req.get_header_value("Content-Type").rfind("application/json", 0) == 0;
}

// The image of a request: the multipart field "image" (or the first file sent), else the raw body.
std::string image_bytes(const Body& body) {
    if (!body.parts.empty()) {
        if (const auto* part = body.part("image")) return part->content;
        for (const auto& part : body.parts)
            if (!part.filename.empty()) return part.content;
        throw RequestError(400, "multipart request without an \"image\" file");
    }
    if (body.raw.empty()) throw RequestError(400, "empty body: send an image, or JSON with \"vector\" or \"id\"");
    return body.raw;
}

json hit_json(const QueryHit& hit) {
    return json{{"rank", hit.rank},
                {"id", hit.id},
                {"distance", hit.distance},
                {"path", hit.path},
                {"file", fmt::format("/images/{}/file", hit.id)},
                {"thumbnail", fmt::format("/images/{}/thumbnail", hit.id)}};
}

json record_json(const ImageRecord& r, bool with_vector) {
    json out{{"id", r.id},         {"path", r.path},   {"size", r.size},
             {"mtime_ns", r.mtime_ns}, {"sha256", r.sha256}, {"width", r.width},
             {"height", r.height}, {"file", fmt::format("/images/{}/file", r.id)}};
    if (with_vector) out["vector"] = r.vector;
    return out;
}

std::string content_type_of(const std::string& path) {
    std::string ext = std::filesystem::path(path).extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".jpg" || ext == ".jpeg" || ext == ".jpe") return "image/jpeg";
    if (ext == ".png") return "image/png";
    if (ext == ".bmp") return "image/bmp";
    if (ext == ".webp") return "image/webp";
    if (ext == ".tif" || ext == ".tiff") return "image/tiff";
    if (ext == ".gif") return "image/gif";
    return "application/octet-stream";
}

bool truthy(const httplib::Request& req, const char* name) {
    if (!req.has_param(name)) return false;
    const std::string v = req.get_param_value(name);
    return v.empty() || v == "1" || v == "true" || v == "yes";
}

int64_t id_from(const std::string& text) {
    try {
        return std::stoll(text);
    } catch (const std::exception&) {
        throw RequestError(404, "no image with id " + text);
    }
}

// The path and bytes of a catalogued image, by id: no client-supplied path ever reaches the disk.
std::pair<std::string, std::string> catalogued_file(const SearchService& service, const std::string& id_text) {
    auto record = service.image(id_from(id_text));
    if (!record) throw RequestError(404, "no image with id " + id_text);
    ImageFile file = read_image_file(record->path);
    if (!file.ok()) throw RequestError(410, record->path + ": " + file.error + " (cbir prune removes rows whose files are gone)");
    return {record->path, std::move(file.bytes)};
}

}  // namespace

HttpApi::HttpApi(SearchService& service, const HttpOptions& options)
    : service_(service), options_(options), server_(std::make_unique<httplib::Server>()) {
    server_->new_task_queue = [threads = options.request_threads] {
        return new httplib::ThreadPool(static_cast<size_t>(std::max(threads, 1)));
    };
    server_->set_payload_max_length(options.max_body_bytes);
    // Without it, Nagle's algorithm holds the body back behind the headers until the client's delayed
    // ACK: every answer took 40 ms more (measured with scripts/bench-serve.sh).
    server_->set_tcp_nodelay(true);
    // httplib's default also sets SO_REUSEPORT, with which a second server binds the same port and
    // the kernel splits connections between the two stores. SO_REUSEADDR alone allows a quick restart.
    server_->set_socket_options([](int socket) {
        const int yes = 1;
        ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    server_->set_read_timeout(30, 0);
    server_->set_write_timeout(30, 0);
    add_routes();
}

HttpApi::~HttpApi() = default;

int HttpApi::bind() {
    int port = options_.port;
    if (port == 0) {
        port = server_->bind_to_any_port(options_.host);
        if (port < 0) throw Error(fmt::format("cannot listen on {}: no free port", options_.host));
    } else if (!server_->bind_to_port(options_.host, port)) {
        throw Error(fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)", options_.host, port));
    }
    return port;
}

void HttpApi::run() { server_->listen_after_bind(); }

void HttpApi::stop() { server_->stop(); }

void HttpApi::add_routes() {
    httplib::Server& s = *server_;
    s.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
        request_started = std::chrono::steady_clock::now();
        return httplib::Server::HandlerResponse::Unhandled;
    });
    s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - request_started).count();
        stats_.record(route_of(req), res.status, ms);
        log_debug(fmt::format("{} {} {} {:.1f} ms", req.method, req.path, res.status, ms));
    });
    // Every failure answers JSON: {"error": "...", "status": N}.
    s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
            std::rethrow_exception(ep);
        } catch (const RequestError& e) {
            send_error(res, e.status(), e.what());
        } catch (const std::exception& e) {
            log_warning(fmt::format("request failed: {}", e.what()));
            send_error(res, 500, e.what());
        } catch (...) {
            send_error(res, 500, "unknown error");
        }
    });
    s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;  // already a JSON error
        if (res.status == 404) send_error(res, 404, "no such route: " + req.method + " " + req.path);
        else if (res.status == 413) send_error(res, 413, "request body too large (see cbir serve --max-body-mb)");
        else send_error(res, res.status, fmt::format("HTTP {}", res.status));
    });

    s.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(kWebPage, "text/html; charset=utf-8"); });

    s.Get("/health", [](const httplib::Request&, httplib::Response& res) { send_json(res, 200, json{{"status", "ok"}}); });

    s.Get("/stats", [this](const httplib::Request&, httplib::Response& res) {
        const ServiceStatus st = service_.status();
        json routes = json::object();
        for (const RouteStats& r : stats_.snapshot())
            routes[r.route] = json{{"count", r.requests}, {"errors", r.errors}, {"p50_ms", r.p50_ms},
                                   {"p99_ms", r.p99_ms}, {"max_ms", r.max_ms}};
        json roots = json::array();
        for (const auto& root : st.roots) roots.push_back(root.string());
        send_json(res, 200,
                  json{{"store", st.store_dir.string()},
                       {"roots", roots},
                       {"images", st.images},
                       {"indexed", st.indexed},
                       {"index", {{"searched", st.index_kind}, {"spec", st.index_spec}, {"saved_generation", st.saved_generation}}},
                       {"generation", st.generation},
                       {"metric", metric_name(st.metric)},
                       {"dimension", st.dimension},
                       {"model", {{"path", st.model.path.string()}, {"sha256", st.model.sha256}, {"untrained", st.model.untrained}}},
                       {"embedding", {{"images", st.images_embedded}, {"batches", st.inference_batches}}},
                       {"uptime_seconds", stats_.uptime_seconds()},
                       {"requests", routes}});
    });

    s.Post("/search", [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
        const Body request_body = read_body(req, reader, options_.max_body_bytes);
        SearchRequest request = search_request_from(req, request_body);
        SearchAnswer answer;
        if (is_json(req)) {
            const json body = parse_json_body(request_body);
            apply_json_fields(body, request);
            if (body.contains("vector")) {
                std::vector<float> vector;
                try {
                    vector = body.at("vector").get<std::vector<float>>();
                } catch (const json::exception&) {
                    throw RequestError(400, "\"vector\" must be an array of numbers");
                }
                answer = service_.search_vector(vector, request);
            } else if (body.contains("id")) {
                if (!body.at("id").is_number_integer()) throw RequestError(400, "\"id\" must be an integer");
                answer = service_.search_id(body.at("id").get<int64_t>(), request);
            } else {
                throw RequestError(400, "JSON search needs \"vector\" or \"id\" (or send the image itself)");
            }
        } else {
            answer = service_.search_image(image_bytes(request_body), request);
        }
        json results = json::array();
        for (const auto& hit : answer.hits) results.push_back(hit_json(hit));
        send_json(res, 200,
                  json{{"query", answer.query_kind},
                       {"metric", metric_name(answer.metric)},
                       {"index", answer.index_kind},
                       {"k", request.k},
                       {"results", results},
                       {"timing_ms", {{"embed", answer.embed_ms}, {"search", answer.search_ms}}}});
    });

    s.Post("/images", [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
        const Body request_body = read_body(req, reader, options_.max_body_bytes);
        AddResult added;
        if (is_json(req)) {
            const json body = parse_json_body(request_body);
            if (!body.contains("path") || !body.at("path").is_string())
                throw RequestError(400, "JSON needs \"path\": a file under a served root (or upload the image itself)");
            added = service_.add_path(body.at("path").get<std::string>());
        } else if (req.has_param("path")) {
            added = service_.add_path(req.get_param_value("path"));
        } else {
            added = service_.add_upload(image_bytes(request_body));
        }
        send_json(res, added.status == "added" ? 201 : 200,
                  json{{"id", added.id}, {"path", added.path}, {"status", added.status},
                       {"file", fmt::format("/images/{}/file", added.id)}});
    });

    s.Get(R"(/images/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
        auto record = service_.image(id_from(req.matches[1]));
        if (!record) throw RequestError(404, "no image with id " + std::string(req.matches[1]));
        send_json(res, 200, record_json(*record, truthy(req, "vector")));
    });

    s.Get(R"(/images/(\d+)/file)", [this](const httplib::Request& req, httplib::Response& res) {
        const auto [path, bytes] = catalogued_file(service_, req.matches[1]);
        res.set_header("Cache-Control", "private, max-age=60");
        res.set_content(bytes, content_type_of(path).c_str());
    });

    // A JPEG of at most `size` pixels (default 256) on the longer side, for result grids.
    s.Get(R"(/images/(\d+)/thumbnail)", [this](const httplib::Request& req, httplib::Response& res) {
        const int size = req.has_param("size") ? to_int(req.get_param_value("size"), "size") : 256;
        if (size < 16 || size > 2048) throw RequestError(400, "size must be between 16 and 2048");
        const auto [path, bytes] = catalogued_file(service_, req.matches[1]);
        Thumbnail thumbnail = make_thumbnail(bytes, size);
        if (!thumbnail.error.empty()) throw RequestError(422, path + ": " + thumbnail.error);
        res.set_header("Cache-Control", "private, max-age=60");
        res.set_content(thumbnail.jpeg, "image/jpeg");
    });

    auto remove = [this](const httplib::Request& req, httplib::Response& res) {
        AddResult removed;
        if (req.matches.size() > 1) {
            const std::string target = req.matches[1];
            const bool numeric = !target.empty() && target.find_first_not_of("0123456789") == std::string::npos;
            removed = numeric ? service_.remove_id(id_from(target)) : service_.remove_path(target);
        } else if (req.has_param("path")) {
            removed = service_.remove_path(req.get_param_value("path"));
        } else if (req.has_param("id")) {
            removed = service_.remove_id(id_from(req.get_param_value("id")));
        } else {
            throw RequestError(400, "DELETE /images/{id}, /images/{path} or /images?path=...");
        }
        send_json(res, 200, json{{"id", removed.id}, {"path", removed.path}, {"status", removed.status}});
    };
    s.Delete(R"(/images/(.+))", remove);
    s.Delete("/images", remove);
}

}  // namespace cbir
