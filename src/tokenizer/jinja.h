// SPDX-License-Identifier: Apache-2.0
// rabbit's own Jinja interpreter: the subset of jinja2 that chat templates use, rendering what
// jinja2 renders in transformers' apply_chat_template (its environment: trim_blocks and
// lstrip_blocks on, the loopcontrols extension, and its tojson, raise_exception, strftime_now,
// namespace and dict). Debian packages no C++ Jinja library, so rabbit writes its own, as
// llama.cpp did. docs/ARCHITECTURE.md lists what the subset holds.
#pragma once

#include "tokenizer/jinja_value.h"

#include <memory>
#include <string>

namespace rabbit::jinja {

struct Stmt;

class Template {
public:
    // Parses the template; `origin` names it in messages (a file path). A syntax error is
    // bad_input and a construct the subset lacks is unsupported, both one line naming origin,
    // the template line and the construct.
    Template(const std::string& source, std::string origin);
    ~Template();
    Template(Template&&) noexcept;
    Template& operator=(Template&&) noexcept;

    // Renders with these variables, over the globals range, namespace, dict and
    // raise_exception. A runtime error (raise_exception included) is bad_input naming origin.
    std::string render(const Dict& variables) const;

    const std::string& origin() const { return origin_; }

private:
    std::unique_ptr<std::vector<Stmt>> body_;
    std::string origin_;
};

} // namespace rabbit::jinja
