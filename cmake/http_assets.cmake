# The dashboard's files (src/services/http/assets/) compiled into keel_app as byte arrays, so the
# keel binary serves the page with no files beside it (cmake/embed_assets.cmake).
set(KEEL_ASSET_DIR ${PROJECT_SOURCE_DIR}/src/services/http/assets)
file(GLOB KEEL_ASSET_FILES CONFIGURE_DEPENDS ${KEEL_ASSET_DIR}/*)
set(KEEL_ASSETS_CC ${PROJECT_BINARY_DIR}/generated/http_assets.cc)
add_custom_command(
  OUTPUT ${KEEL_ASSETS_CC}
  COMMAND ${CMAKE_COMMAND} -DASSET_DIR=${KEEL_ASSET_DIR} -DOUTPUT=${KEEL_ASSETS_CC}
          -P ${PROJECT_SOURCE_DIR}/cmake/embed_assets.cmake
  DEPENDS ${KEEL_ASSET_FILES} ${PROJECT_SOURCE_DIR}/cmake/embed_assets.cmake
  COMMENT "Embedding the dashboard's files"
  VERBATIM)
target_sources(keel_app PRIVATE ${KEEL_ASSETS_CC})
