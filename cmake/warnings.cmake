# SPDX-License-Identifier: Apache-2.0
# Warnings every target of ours gets. CI turns them into errors (SLUICE_WERROR).
set(SLUICE_WARNINGS -Wall -Wextra -Wconversion -Wsign-conversion -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
if(SLUICE_WERROR)
  list(APPEND SLUICE_WARNINGS -Werror)
endif()
