#pragma once
// The search page served at "/": plain HTML and JavaScript from serve/web/index.html, compiled into
// the binary (CMake turns the file into web_page.cpp), so the server needs no files beside it.
namespace cbir {
extern const char* const kWebPage;
}
