// SPDX-License-Identifier: Apache-2.0
// Ctrl-C and SIGTERM set a flag that long loops poll, so that they unwind through the
// destructors that remove partial output, instead of dying mid-write.
#pragma once

namespace rabbit {

void install_interrupt_handlers();
// Throws Error(ExitCode::interrupted) once SIGINT or SIGTERM arrived.
void throw_if_interrupted();
// Whether SIGINT or SIGTERM arrived, and forgetting that it did (an interactive session that
// stops the current answer and goes on).
bool interrupted();
void clear_interrupt();

} // namespace rabbit
