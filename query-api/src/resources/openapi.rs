//! The OpenAPI paths and schemas of every resource, generated from the same [`Resource`]
//! declarations as the routes (so the document cannot drift from them). Merged into the
//! document of `GET /api/v1/openapi.json`.

use atlasmesh_core::domain::{ActionBody, Resource, ResourceInfo, ScopeKind};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::{
    ArrayBuilder, ComponentsBuilder, ContentBuilder, KnownFormat, ObjectBuilder, OpenApi,
    OpenApiBuilder, Paths, Ref, RefOr, Required, ResponseBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{PartialSchema, ToSchema};

const JSON: &str = "application/json";

/// The paths and component schemas of every resource.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    let mut components = ComponentsBuilder::new();
    components = add_schema::<ActionBody>(components);
    macro_rules! add {
        ($($t:ty),* $(,)?) => { $( components = add_resource::<$t>(&mut paths, components); )* };
    }
    atlasmesh_core::for_each_resource!(add);
    OpenApiBuilder::new()
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

fn add_schema<T: ToSchema>(mut c: ComponentsBuilder) -> ComponentsBuilder {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    for (name, schema) in nested {
        c = c.schema(name, schema);
    }
    c.schema(T::name(), T::schema())
}

/// The fields a `PUT` must give: the mutable fields (the update type's properties) that every
/// entity has (required in the view). Optional ones (a description, an error, an end time)
/// may be left out and then stay as they are: the command path cannot clear a field.
pub fn replace_required<R: Resource>() -> Vec<String>
where
    R::Update: ToSchema,
    R::View: ToSchema,
{
    let (RefOr::T(Schema::Object(update)), RefOr::T(Schema::Object(view))) =
        (R::Update::schema(), R::View::schema())
    else {
        return Vec::new();
    };
    update
        .properties
        .keys()
        .filter(|k| view.required.contains(k))
        .cloned()
        .collect()
}

/// The update type's schema with the fields of [`replace_required`] required: a `PUT` body.
fn replace_schema<R: Resource>() -> RefOr<Schema>
where
    R::Update: ToSchema,
    R::View: ToSchema,
{
    match R::Update::schema() {
        RefOr::T(Schema::Object(mut o)) => {
            o.required = replace_required::<R>();
            RefOr::T(Schema::Object(o))
        }
        other => other,
    }
}

fn last_segment(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).replace('-', "_")
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json_body(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn error(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(JSON, json_body(schema_ref("ErrorBody")))
        .build()
}

fn query(
    name: &str,
    description: &str,
    format: Option<KnownFormat>,
) -> utoipa::openapi::path::Parameter {
    let mut s = ObjectBuilder::new().schema_type(Type::String);
    if let Some(f) = format {
        s = s.format(Some(SchemaFormat::KnownFormat(f)));
    }
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(s))
        .build()
}

fn path_param(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

fn list_params(info: &ResourceInfo, op: OperationBuilder, fixed: Option<&str>) -> OperationBuilder {
    let mut op = op;
    for l in info.lookups.iter().filter(|l| Some(l.column) != fixed) {
        op = op.parameter(query(
            l.column,
            &format!("Only rows with this {}.", l.column),
            None,
        ));
    }
    op.parameter(query(
        "from",
        "Created at or after (RFC 3339 or epoch ms).",
        Some(KnownFormat::DateTime),
    ))
    .parameter(query(
        "to",
        "Created before (RFC 3339 or epoch ms).",
        Some(KnownFormat::DateTime),
    ))
    .parameter(query(
        "limit",
        "Page size, 1..=api.max_page_size (default 100).",
        None,
    ))
    .parameter(query("cursor", "`next_cursor` of the previous page.", None))
    .response(
        "200",
        ResponseBuilder::new()
            .description("A page, oldest first")
            .content(JSON, json_body(schema_ref(&page_name(info)))),
    )
    .response("400", error("Invalid parameters"))
    .response("401", error("Not authenticated"))
    .response("403", error("A fleet outside your scope"))
}

fn page_name(info: &ResourceInfo) -> String {
    let mut name: String = info
        .name
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    name.push_str("Page");
    name
}

fn write_responses(op: OperationBuilder) -> OperationBuilder {
    op.parameter(query(
        "wait",
        "`true`: wait (bounded) for the outcome and answer 201/200/4xx.",
        None,
    ))
    .parameter(
        ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Repeating a request with the same key returns the first command.",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build(),
    )
    .response(
        "202",
        ResponseBuilder::new().description("Command accepted; `Location` is the command"),
    )
    .response(
        "200",
        ResponseBuilder::new().description("With wait: applied"),
    )
    .response(
        "201",
        ResponseBuilder::new().description("With wait: created"),
    )
    .response("400", error("Malformed JSON"))
    .response("401", error("Not authenticated"))
    .response("403", error("Role or scope does not allow it"))
    .response("409", error("With wait: rejected by a domain rule"))
    .response("422", error("Invalid fields"))
}

fn op(info: &ResourceInfo, id: String, summary: String) -> OperationBuilder {
    OperationBuilder::new()
        .tag(info.tag)
        .operation_id(Some(id))
        .summary(Some(summary))
        .response(
            "429",
            error("Rate limit of the caller or of its client address exceeded (see Retry-After)"),
        )
}

/// The answers about a request body (see [`crate::body`]).
fn body_responses(op: OperationBuilder) -> OperationBuilder {
    op.response(
        "408",
        error("The body did not arrive within api.body_read_timeout_ms"),
    )
    .response("413", error("The body is larger than 2 MiB"))
    .response(
        "415",
        error("A non-empty body that is not Content-Type application/json (UTF-8)"),
    )
}

fn body(schema: &str) -> Option<utoipa::openapi::request_body::RequestBody> {
    Some(
        RequestBodyBuilder::new()
            .content(JSON, json_body(schema_ref(schema)))
            .required(Some(Required::True))
            .build(),
    )
}

fn add_resource<R: Resource>(paths: &mut Paths, mut c: ComponentsBuilder) -> ComponentsBuilder
where
    R::Create: ToSchema,
    R::Update: ToSchema,
    R::View: ToSchema,
{
    let i = &R::INFO;
    let view = R::View::name();
    c = add_schema::<R::View>(c);
    let page = ObjectBuilder::new()
        .property("items", ArrayBuilder::new().items(schema_ref(&view)))
        .required("items")
        .property(
            "next_cursor",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some(
                    "Pass as `cursor` for the next page; null on the last page.",
                )),
        )
        .required("next_cursor");
    c = c.schema(page_name(i), page);

    let item_path = i.entity_route();
    let id_param = path_param("id", "Entity id");
    let list: Operation = list_params(
        i,
        op(i, format!("list_{}", i.name), format!("List {}", i.plural)),
        None,
    )
    .build();
    paths.add_path_operation(i.path, vec![HttpMethod::Get], list);
    let get = op(
        i,
        format!("get_{}", i.name),
        format!("Get one of the {}", i.plural),
    )
    .parameter(id_param.clone())
    .response(
        "200",
        ResponseBuilder::new()
            .description("The entity")
            .content(JSON, json_body(schema_ref(&view))),
    )
    .response("400", error("An id that is not UTF-8"))
    .response("401", error("Not authenticated"))
    .response("404", error("No such entity in your scope"));
    let get = if matches!(i.scope, ScopeKind::Correspondence { .. }) {
        get.response(
            "403",
            error("A message of a federation none of your fleets is a member of"),
        )
    } else {
        get
    };
    paths.add_path_operation(&item_path, vec![HttpMethod::Get], get.build());
    if i.ops.create {
        c = add_schema::<R::Create>(c);
        let create = body_responses(write_responses(op(
            i,
            format!("create_{}", i.name),
            format!("Create one of the {}", i.plural),
        )))
        .request_body(body(&R::Create::name()))
        .build();
        paths.add_path_operation(i.path, vec![HttpMethod::Post], create.clone());
        if let Some(p) = i.create_also_at {
            let mut also = create;
            also.operation_id = Some(format!("create_{}_at_{}", i.name, last_segment(p)));
            paths.add_path_operation(p, vec![HttpMethod::Post], also);
        }
    }
    if i.ops.update {
        c = add_schema::<R::Update>(c);
        let update = body_responses(write_responses(op(
            i,
            format!("update_{}", i.name),
            format!("Update one of the {}", i.plural),
        )))
        .parameter(id_param.clone())
        .request_body(body(&R::Update::name()))
        .response("404", error("No such entity in your scope"))
        .build();
        paths.add_path_operation(&item_path, vec![HttpMethod::Patch], update);
        let replace_schema = format!("{}Replace", R::Update::name().trim_end_matches("Update"));
        c = c.schema(&replace_schema, self::replace_schema::<R>());
        let replace = body_responses(write_responses(op(
            i,
            format!("replace_{}", i.name),
            format!(
                "Replace the mutable fields of one of the {} (each field every entity has is required; the same update command as PATCH)",
                i.plural
            ),
        )))
        .parameter(id_param.clone())
        .request_body(body(&replace_schema))
        .response("404", error("No such entity in your scope"))
        .build();
        paths.add_path_operation(&item_path, vec![HttpMethod::Put], replace);
    }
    if i.ops.delete {
        let delete = write_responses(op(
            i,
            format!("delete_{}", i.name),
            format!(
                "Delete one of the {} (role {})",
                i.plural,
                i.delete_role.as_str()
            ),
        ))
        .parameter(id_param.clone())
        .response("404", error("No such entity in your scope"))
        .build();
        paths.add_path_operation(&item_path, vec![HttpMethod::Delete], delete);
    }
    for l in i.lookups {
        let lookup = list_params(
            i,
            op(
                i,
                format!("list_{}_{}", i.name, l.segment.replace('-', "_")),
                format!("List {} {}", i.plural, l.segment.replace('-', " ")),
            )
            .parameter(path_param("value", &format!("The {}", l.column))),
            Some(l.column),
        )
        .build();
        paths.add_path_operation(
            format!("{}/{}/{{value}}", i.path, l.segment),
            vec![HttpMethod::Get],
            lookup,
        );
    }
    if let Some(col) = i.item_key {
        let by_key = list_params(
            i,
            op(
                i,
                format!("list_{}_of_{col}", i.name),
                format!("List the {} with this {col}", i.plural),
            )
            .parameter(path_param(col, &format!("The {col}"))),
            Some(col),
        )
        .build();
        paths.add_path_operation(
            format!("{}/{{{col}}}", i.path),
            vec![HttpMethod::Get],
            by_key,
        );
    }
    if let Some(n) = i.nested {
        let parent_param = path_param("id", &format!("The {} id", n.parent));
        let list = list_params(
            i,
            op(
                i,
                format!("list_{}_of_{}", i.name, n.parent),
                format!("List the {} of one {}", i.plural, n.parent),
            )
            .parameter(parent_param.clone()),
            Some(n.column),
        )
        .response("404", error("No such parent in your scope"))
        .build();
        paths.add_path_operation(n.collection_route(), vec![HttpMethod::Get], list);
        if i.ops.create {
            let create = body_responses(write_responses(op(
                i,
                format!("create_{}_in_{}", i.name, n.parent),
                format!(
                    "Create one of the {} of this {} (`{}` from the path; if given, it must match)",
                    i.plural, n.parent, n.column
                ),
            )))
            .parameter(parent_param.clone())
            .request_body(body(&R::Create::name()))
            .response("404", error("No such parent in your scope"))
            .build();
            paths.add_path_operation(n.collection_route(), vec![HttpMethod::Post], create);
        }
        if let (Some(route), Some(key), true) = (n.member_route(), n.key, i.ops.delete) {
            let delete = write_responses(op(
                i,
                format!("delete_{}_of_{}", i.name, n.parent),
                format!(
                    "Delete the one of the {} with this {key} from the {} (role {})",
                    i.plural,
                    n.parent,
                    i.delete_role.as_str()
                ),
            ))
            .parameter(parent_param)
            .parameter(path_param(key, &format!("The {key}")))
            .response(
                "404",
                error("No such parent, or no such child of it, in your scope"),
            )
            .build();
            paths.add_path_operation(route, vec![HttpMethod::Delete], delete);
        }
    }
    for a in i.actions {
        let action = body_responses(write_responses(op(
            i,
            format!("{}_{}", a.name, i.name),
            a.summary.to_string(),
        )))
        .parameter(id_param.clone())
        .request_body(body("ActionBody"))
        .response("404", error("No such entity in your scope"))
        .build();
        paths.add_path_operation(
            format!("{}/{}", item_path, a.name),
            vec![HttpMethod::Post],
            action,
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_route_is_documented() {
        let doc = document();
        let json = serde_json::to_value(&doc).unwrap();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        for e in atlasmesh_core::domain::catalog() {
            let i = e.info;
            let p = &json["paths"][i.path];
            assert!(p["get"].is_object(), "{}", i.path);
            assert_eq!(p["post"].is_object(), i.ops.create, "{}", i.path);
            let item = &json["paths"][i.entity_route()];
            assert!(item["get"].is_object());
            assert_eq!(item["patch"].is_object(), i.ops.update, "{}", i.path);
            assert_eq!(item["put"].is_object(), i.ops.update, "{}", i.path);
            if let Some(col) = i.item_key {
                assert!(json["paths"][format!("{}/{{{col}}}", i.path)]["get"].is_object());
            }
            if let Some(n) = i.nested {
                let p = &json["paths"][n.collection_route()];
                assert!(p["get"].is_object() && p["post"].is_object(), "{}", i.name);
                if let Some(m) = n.member_route() {
                    assert!(json["paths"][m]["delete"].is_object(), "{}", i.name);
                }
            }
            assert_eq!(item["delete"].is_object(), i.ops.delete, "{}", i.path);
            for l in i.lookups {
                assert!(
                    json["paths"][format!("{}/{}/{{value}}", i.path, l.segment)]["get"].is_object()
                );
            }
            for a in i.actions {
                assert!(
                    json["paths"][format!("{}/{}", i.entity_route(), a.name)]["post"].is_object()
                );
            }
            assert!(p["get"]["responses"]["429"].is_object(), "{}", i.path);
            if i.ops.create {
                for status in ["408", "413", "415"] {
                    assert!(p["post"]["responses"][status].is_object(), "{}", i.path);
                }
            }
            assert!(schemas.contains_key(&page_name(i)), "{}", page_name(i));
        }
        // Every $ref points at a schema that exists (nested enums included).
        let text = json.to_string();
        for r in text.split("\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(
                schemas.contains_key(name) || name == "ErrorBody",
                "dangling $ref {name}"
            );
        }
        assert!(schemas.contains_key("Severity") && schemas.contains_key("AllocationCreate"));
    }
}
