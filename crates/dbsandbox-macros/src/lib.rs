//! The `#[dbsandbox::test]` attribute. Use it through the `dbsandbox` crate
//! (`dbsandbox::test`): the expansion refers to `::dbsandbox::__private`.
//!
//! ```ignore
//! #[dbsandbox::test] // rollback sandbox, dbsandbox.toml's schema
//! async fn a(pool: sqlx::PgPool) {}
//! #[dbsandbox::test(isolation = "database", migrations = "migrations")]
//! async fn b(client: tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
//!     Ok(())
//! }
//! #[dbsandbox::test]
//! async fn c(url: &str) {}
//! ```
//!
//! The expansion is a plain `#[test] fn` that acquires a sandbox, runs the body on a
//! current-thread tokio runtime with the requested connection, closes it and gives the sandbox
//! back, also when the body panics.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{parse_macro_input, FnArg, ItemFn, LitStr, Type};

/// Marks an `async fn` as a test that gets its own PostgreSQL sandbox.
///
/// The function takes no argument or one of: `sqlx::PgPool`, `sqlx::PgConnection` (feature
/// `sqlx` of `dbsandbox`), `tokio_postgres::Client` (feature `tokio-postgres`), `String` or
/// `&str` (the connection URL), `&dbsandbox::Sandbox`. It may return `()` or a `Result`.
///
/// Options: `isolation = "rollback"` (default) or `"database"`; `migrations = "dir"` (relative
/// to the crate's `Cargo.toml`; overrides `dbsandbox.toml`).
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| options.parse(meta));
    parse_macro_input!(attr with parser);
    let function = parse_macro_input!(item as ItemFn);
    match expand(options, function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Default)]
struct Options {
    database: bool,
    migrations: Option<LitStr>,
}

impl Options {
    fn parse(&mut self, meta: syn::meta::ParseNestedMeta) -> syn::Result<()> {
        if meta.path.is_ident("isolation") {
            let value: LitStr = meta.value()?.parse()?;
            self.database = match value.value().as_str() {
                "rollback" => false,
                "database" => true,
                _ => {
                    return Err(syn::Error::new(
                        value.span(),
                        "isolation must be \"rollback\" or \"database\"",
                    ))
                }
            };
            Ok(())
        } else if meta.path.is_ident("migrations") {
            let value: LitStr = meta.value()?.parse()?;
            check_migrations_dir(&value)?;
            self.migrations = Some(value);
            Ok(())
        } else {
            Err(meta.error(
                "unknown option: #[dbsandbox::test] takes `isolation = \"rollback\"|\"database\"` and `migrations = \"dir\"`",
            ))
        }
    }
}

/// `migrations = "dir"` must name a directory of the crate (checked at compile time).
fn check_migrations_dir(value: &LitStr) -> syn::Result<()> {
    let dir = value.value();
    if dir.trim().is_empty() {
        return Err(syn::Error::new(
            value.span(),
            "migrations directory is empty",
        ));
    }
    if let Ok(manifest) = std::env::var("CARGO_MANIFEST_DIR") {
        let path = std::path::Path::new(&manifest).join(&dir);
        if !path.is_dir() {
            return Err(syn::Error::new(
                value.span(),
                format!(
                    "migrations directory {} does not exist (paths are relative to the crate's Cargo.toml)",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// What the test function wants.
enum Arg {
    None,
    SqlxPool,
    SqlxConnection,
    TokioPostgres,
    UrlString,
    UrlStr,
    Sandbox,
}

fn last_segment(ty: &Type) -> Option<(String, &syn::PathSegment)> {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().map(|s| (s.ident.to_string(), s))
        }
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn classify(ty: &Type) -> syn::Result<Arg> {
    let unsupported = || {
        syn::Error::new(
            ty.span(),
            "unsupported argument type for #[dbsandbox::test]: expected sqlx::PgPool, \
             sqlx::PgConnection, tokio_postgres::Client, String, &str or &dbsandbox::Sandbox",
        )
    };
    if let Type::Reference(r) = ty {
        if r.mutability.is_some() {
            return Err(unsupported());
        }
        return match last_segment(&r.elem).map(|(n, _)| n).as_deref() {
            Some("str") => Ok(Arg::UrlStr),
            Some("Sandbox") => Ok(Arg::Sandbox),
            _ => Err(unsupported()),
        };
    }
    let Some((name, segment)) = last_segment(ty) else {
        return Err(unsupported());
    };
    match name.as_str() {
        "PgPool" => Ok(Arg::SqlxPool),
        // sqlx::Pool<Postgres>
        "Pool"
            if matches!(&segment.arguments, syn::PathArguments::AngleBracketed(a)
            if a.args.len() == 1 && quote!(#a).to_string().contains("Postgres")) =>
        {
            Ok(Arg::SqlxPool)
        }
        "PgConnection" => Ok(Arg::SqlxConnection),
        "Client" => Ok(Arg::TokioPostgres),
        "String" => Ok(Arg::UrlString),
        _ => Err(unsupported()),
    }
}

fn expand(options: Options, function: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            "#[dbsandbox::test] needs an `async fn` (it provides the runtime; no #[tokio::test])",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "#[dbsandbox::test] functions cannot be generic",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(
            v.span(),
            "variadic test functions are not supported",
        ));
    }
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new(c.span(), "a test cannot be a `const fn`"));
    }
    if let Some(u) = &sig.unsafety {
        return Err(syn::Error::new(u.span(), "a test cannot be an `unsafe fn`"));
    }
    if let Some(a) = &sig.abi {
        return Err(syn::Error::new(a.span(), "a test cannot have an ABI"));
    }
    let arg =
        match sig.inputs.len() {
            0 => Arg::None,
            1 => match &sig.inputs[0] {
                FnArg::Typed(t) => classify(&t.ty)?,
                FnArg::Receiver(r) => {
                    return Err(syn::Error::new(r.span(), "a test cannot take `self`"));
                }
            },
            _ => return Err(syn::Error::new(
                sig.inputs.span(),
                "#[dbsandbox::test] functions take at most one argument (a pool, client or URL)",
            )),
        };
    for attr in &function.attrs {
        if attr.path().is_ident("test")
            || attr
                .path()
                .segments
                .last()
                .is_some_and(|s| s.ident == "test")
        {
            return Err(syn::Error::new(
                attr.span(),
                "remove this attribute: #[dbsandbox::test] already makes the function a test",
            ));
        }
    }

    let name = &sig.ident;
    let output = &sig.output;
    let inputs = &sig.inputs;
    let body = &function.block;
    let attrs = &function.attrs;
    let vis = &function.vis;
    let isolation = if options.database {
        quote!(::dbsandbox::Isolation::Database)
    } else {
        quote!(::dbsandbox::Isolation::Rollback)
    };
    let migrations = match &options.migrations {
        Some(m) => quote!(::core::option::Option::Some(#m)),
        None => quote!(::core::option::Option::None),
    };
    let inner = syn::Ident::new("__dbsandbox_test_body", Span::mixed_site());
    let lease = syn::Ident::new("__dbsandbox_sandbox", Span::mixed_site());
    let span = sig.inputs.span();
    let call = match arg {
        Arg::None => quote!(#inner().await),
        Arg::UrlStr => quote!(#inner(#lease.url()).await),
        Arg::UrlString => quote!(#inner(::std::string::ToString::to_string(#lease.url())).await),
        Arg::Sandbox => quote!(#inner(&#lease).await),
        Arg::SqlxPool => quote_spanned! {span=>
            {
                let pool = ::dbsandbox::__private::connect_sqlx_pool(#lease.url()).await;
                let closer = ::core::clone::Clone::clone(&pool);
                let out = #inner(pool).await;
                ::dbsandbox::__private::close_sqlx_pool(closer).await;
                out
            }
        },
        Arg::SqlxConnection => quote_spanned! {span=>
            #inner(::dbsandbox::__private::connect_sqlx_connection(#lease.url()).await).await
        },
        Arg::TokioPostgres => quote_spanned! {span=>
            #inner(::dbsandbox::__private::connect_tokio_postgres(#lease.url()).await).await
        },
    };
    Ok(quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() #output {
            async fn #inner(#inputs) #output #body

            // Declared before the runtime exists and dropped after it is gone (also when the body
            // panics): the sandbox is given back once every connection is closed.
            let #lease = ::dbsandbox::__private::acquire_for_test(
                ::dbsandbox::__private::TestOptions {
                    name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                    isolation: #isolation,
                    migrations: #migrations,
                    manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
                },
            );
            ::dbsandbox::__private::block_on(async { #call })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{classify, expand, Arg, Options};
    use proc_macro2::TokenStream as TokenStream2;
    use quote::quote;
    use syn::parse::Parser;
    use syn::{ItemFn, Type};

    fn options(tokens: TokenStream2) -> syn::Result<Options> {
        let mut options = Options::default();
        syn::meta::parser(|meta| options.parse(meta)).parse2(tokens)?;
        Ok(options)
    }

    fn expand_str(options: Options, item: &str) -> syn::Result<String> {
        let function: ItemFn = syn::parse_str(item)?;
        expand(options, function).map(|t| t.to_string())
    }

    fn err(item: &str) -> String {
        match expand_str(Options::default(), item) {
            Ok(t) => panic!("accepted {item}: {t}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_options() {
        let o = options(quote!(isolation = "database", migrations = "src")).unwrap();
        assert!(o.database);
        assert_eq!(o.migrations.unwrap().value(), "src");
        assert!(!options(quote!()).unwrap().database);
        assert!(!options(quote!(isolation = "rollback")).unwrap().database);
        let e = options(quote!(isolation = "serializable")).err().unwrap();
        assert!(e.to_string().contains("rollback"), "{e}");
        let e = options(quote!(migration = "src")).err().unwrap();
        assert!(e.to_string().contains("unknown option"), "{e}");
        let e = options(quote!(migrations = "no/such/dir")).err().unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(options(quote!(isolation = database)).is_err());
    }

    #[test]
    fn classifies_argument_types() {
        let kind = |ty: &str| {
            classify(&syn::parse_str::<Type>(ty).unwrap()).map(|a| match a {
                Arg::None => "none",
                Arg::SqlxPool => "pool",
                Arg::SqlxConnection => "conn",
                Arg::TokioPostgres => "client",
                Arg::UrlString => "string",
                Arg::UrlStr => "str",
                Arg::Sandbox => "sandbox",
            })
        };
        assert_eq!(kind("sqlx::PgPool").unwrap(), "pool");
        assert_eq!(kind("PgPool").unwrap(), "pool");
        assert_eq!(kind("sqlx::Pool<sqlx::Postgres>").unwrap(), "pool");
        assert_eq!(kind("sqlx::PgConnection").unwrap(), "conn");
        assert_eq!(kind("tokio_postgres::Client").unwrap(), "client");
        assert_eq!(kind("String").unwrap(), "string");
        assert_eq!(kind("&str").unwrap(), "str");
        assert_eq!(kind("&'static str").unwrap(), "str");
        assert_eq!(kind("&dbsandbox::Sandbox").unwrap(), "sandbox");
        for bad in [
            "u32",
            "&mut str",
            "sqlx::Pool<sqlx::MySql>",
            "(i32, i32)",
            "Vec<u8>",
        ] {
            assert!(kind(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn expands_a_pool_test() {
        let out = expand_str(
            options(quote!(isolation = "database")).unwrap(),
            "async fn inserts(pool: sqlx::PgPool) -> Result<(), sqlx::Error> { Ok(()) }",
        )
        .unwrap();
        assert!(out.contains(":: core :: prelude :: v1 :: test"), "{out}");
        assert!(
            out.contains("fn inserts () -> Result < () , sqlx :: Error >"),
            "{out}"
        );
        assert!(out.contains("connect_sqlx_pool"), "{out}");
        assert!(out.contains("close_sqlx_pool"), "{out}");
        assert!(out.contains("Isolation :: Database"), "{out}");
        assert!(out.contains("block_on"), "{out}");
    }

    #[test]
    fn keeps_other_attributes() {
        let out = expand_str(
            Options::default(),
            "#[ignore] #[should_panic] async fn t(url: &str) { let _ = url; }",
        )
        .unwrap();
        assert!(out.contains("# [ignore]"), "{out}");
        assert!(out.contains("# [should_panic]"), "{out}");
        assert!(out.contains("Isolation :: Rollback"), "{out}");
        assert!(!out.contains("connect_"), "{out}");
    }

    #[test]
    fn rejects_unsupported_signatures() {
        assert!(err("fn t(pool: sqlx::PgPool) {}").contains("async fn"));
        assert!(err("async fn t(a: String, b: String) {}").contains("at most one"));
        assert!(err("async fn t<T>(a: T) {}").contains("generic"));
        assert!(err("async fn t(n: u32) {}").contains("unsupported argument type"));
        assert!(err("#[tokio::test] async fn t() {}").contains("already makes"));
        assert!(err("#[test] async fn t() {}").contains("already makes"));
        assert!(err("async unsafe fn t() {}").contains("unsafe"));
    }
}
