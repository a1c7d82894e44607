//! JNI entry points for the JVM's two hot operations, `Client.call` and `Bus.publish`.
//!
//! Why not the generated path: a uniffi suspend function costs the JVM five JNA calls
//! (start the future, poll it with a callback, complete, free, free the argument
//! buffer), each allocating JNA `Structure`s and `Memory` that end on JNA's cleaner
//! thread and the GC, plus a JNA callback into the JVM per poll (issue 15's profile:
//! the uniffi/JNA layer cost 80-90% of a Kotlin call's throughput). Here one JNI call
//! starts the operation and one JNI call from core's worker settles the coroutine.
//!
//! What stays the same: the arguments and the outcome cross as uniffi's own serialized
//! form, written and read by the generated Kotlin converters (`FfiConverterTypeRequest`,
//! `FfiConverterTypeResponse`, `FfiConverterTypeCourierError`...), so the Kotlin types,
//! the error mapping and every behaviour in core are those of the generated path; only
//! the transport between the JVM and core differs. JniCalls.kt is the Kotlin half.
//!
//! # Contract with JniCalls.kt
//! - [`register`] runs once, from the Kotlin object's initializer, before any
//!   operation: it binds the natives and looks up `JniCalls.settle(Object, boolean,
//!   byte[])` on a JVM thread (a core worker could not find an application class
//!   through JNI's system class loader).
//! - An operation borrows an object handle (uniffi's handle is `Arc::into_raw`) that
//!   the caller keeps valid by holding the object's call counter until the native
//!   returns, as the generated `callWithHandle` does, but without its clone (a JNA call
//!   per operation); it clones what it keeps and returns a cancel token.
//! - If it throws, no task was started and the caller's `Pending` is never settled;
//!   otherwise the task settles it exactly once, whatever happens (a panic in core is an
//!   `Internal` error; a cancelled token ends it with `Closed`).
//! - `cancel(token)` may come any time before `release(token)`; `release` comes once.

use std::cell::Cell;
use std::ffi::c_void;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use courierkit::runtime;
use jni::errors::ThrowRuntimeExAndDefault;
use jni::ids::JStaticMethodID;
use jni::objects::{JByteArray, JClass, JObject};
use jni::refs::Global;
use jni::signature::{Primitive, ReturnType};
use jni::strings::{JNIStr, JNIString};
use jni::sys::{self, jint, jlong, jvalue};
use jni::{Env, EnvUnowned, JavaVM, NativeMethod, jni_sig, jni_str};
use uniffi::{Lift, Lower};

use crate::UniFfiTag;
use crate::bus::{Bus, PublishOptions, Receipt};
use crate::client::{Client, Request, Response};
use crate::error::CourierError;

/// `JniCalls.settle` and its class, looked up once by [`register`].
struct Settler {
    class: Global<JClass<'static>>,
    method: JStaticMethodID,
}

static SETTLER: OnceLock<Settler> = OnceLock::new();

/// The address of [`register`], for JniCalls.kt to call through JNA (see the module
/// docs for why). Not part of the API.
#[uniffi::export]
pub fn jvm_registrar() -> u64 {
    let register: extern "system" fn(EnvUnowned<'static>, JClass<'static>) -> jint = register;
    register as usize as u64
}

/// Binds `JniCalls`' native methods to this library's functions and finds
/// `JniCalls.settle`; returns 1. Called once, through JNA with the caller's `JNIEnv`
/// (`JNIEnv.CURRENT`) and the class, by JniCalls.kt.
///
/// Why not `System.load` and `Java_...` symbol names: JNA loads this library from the
/// JAR through a temporary file that it deletes once loaded, and loading it again would
/// load a second copy, with a second runtime that the first copy's clients do not use.
/// Registering from inside the copy JNA loaded binds the natives to that one.
extern "system" fn register<'l>(mut env: EnvUnowned<'l>, class: JClass<'l>) -> jint {
    env.with_env(|env| -> jni::errors::Result<jint> {
        let methods = [
            native(
                jni_str!("call"),
                jni_str!("(J[BILjava/lang/Object;)J"),
                call as *mut c_void,
            ),
            native(
                jni_str!("publish"),
                jni_str!("(J[BILjava/lang/Object;)J"),
                publish as *mut c_void,
            ),
            native(jni_str!("cancel"), jni_str!("(J)V"), cancel as *mut c_void),
            native(
                jni_str!("release"),
                jni_str!("(J)V"),
                release as *mut c_void,
            ),
        ];
        // SAFETY: each pointer is a static native of the matching signature below.
        unsafe { env.register_native_methods(&class, &methods) }?;
        if SETTLER.get().is_none() {
            let method = env.get_static_method_id(
                &class,
                jni_str!("settle"),
                jni_sig!("(Ljava/lang/Object;Z[B)V"),
            )?;
            let class = env.new_global_ref(&class)?;
            let _ = SETTLER.set(Settler { class, method });
        }
        Ok(1)
    })
    .resolve::<ThrowRuntimeExAndDefault>()
}

fn native<'a>(name: &'a JNIStr, sig: &'a JNIStr, function: *mut c_void) -> NativeMethod<'a> {
    // SAFETY: `register` pairs each function with its own signature.
    unsafe { NativeMethod::from_raw_parts(name, sig, function) }
}

/// `JniCalls.call(client, request, pending)`: `Client.call` with a serialized `Request`.
extern "system" fn call<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    client: jlong,
    request: JByteArray<'l>,
    length: jint,
    pending: JObject<'l>,
) -> jlong {
    // SAFETY: the caller holds the object's call counter across this call (JniCalls
    // `Handles.borrow`), so the handle stays valid until it returns; it is only borrowed,
    // and what the operation keeps is cloned from it here.
    let client = unsafe { &*(client as usize as *const Client) };
    env.with_env(|env| -> jni::errors::Result<jlong> {
        let bytes = written(env.convert_byte_array(&request)?, length);
        let pending = env.new_global_ref(&pending)?;
        let request = read::<Request>(&bytes).and_then(courierkit::Request::try_from);
        let client = client.core().clone();
        start(env, pending, async move {
            Ok(client.call(request?).await.map(Response::from)?)
        })
    })
    .resolve::<ThrowRuntimeExAndDefault>()
}

/// `JniCalls.publish(bus, args, pending)`: `Bus.publish` with the exchange, routing key,
/// body and `PublishOptions` serialized one after another.
extern "system" fn publish<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    bus: jlong,
    args: JByteArray<'l>,
    length: jint,
    pending: JObject<'l>,
) -> jlong {
    // SAFETY: as in `call`, a handle lent for this call.
    let bus = unsafe { &*(bus as usize as *const Bus) };
    env.with_env(|env| -> jni::errors::Result<jlong> {
        let bytes = written(env.convert_byte_array(&args)?, length);
        let pending = env.new_global_ref(&pending)?;
        let args = publish_args(&bytes);
        let bus = bus.core().clone();
        start(env, pending, async move {
            let (exchange, routing_key, body, options) = args?;
            let receipt = bus
                .publish(&exchange, &routing_key, body.into(), options)
                .await?;
            Ok(Receipt::from(receipt))
        })
    })
    .resolve::<ThrowRuntimeExAndDefault>()
}

/// `JniCalls.cancel(token)`: ends the operation with `Closed`, dropping its future,
/// which releases what it held (a call's concurrency slot, a publish's unconfirmed slot).
extern "system" fn cancel<'l>(_env: EnvUnowned<'l>, _class: JClass<'l>, token: jlong) {
    // SAFETY: a token from `start` that the caller has not released yet.
    let token = unsafe { &*(token as usize as *const runtime::CancelToken) };
    token.cancel();
}

/// `JniCalls.release(token)`: gives back the caller's share of the token.
extern "system" fn release<'l>(_env: EnvUnowned<'l>, _class: JClass<'l>, token: jlong) {
    // SAFETY: a token from `start`, released once.
    drop(unsafe { Arc::from_raw(token as usize as *const runtime::CancelToken) });
}

/// The exchange, routing key, body and options of a publish, in the order Kotlin wrote
/// them.
fn publish_args(
    bytes: &[u8],
) -> Result<(String, String, Vec<u8>, courierkit::PublishOptions), CourierError> {
    let mut buf = bytes;
    let exchange = lift::<String>(&mut buf)?;
    let routing_key = lift::<String>(&mut buf)?;
    let body = lift::<Vec<u8>>(&mut buf)?;
    let options = courierkit::PublishOptions::try_from(lift::<PublishOptions>(&mut buf)?)?;
    finished(buf)?;
    Ok((exchange, routing_key, body, options))
}

/// The first `length` bytes of `array`: Kotlin sizes its buffer by the converters'
/// upper bound and passes how much it wrote.
fn written(mut array: Vec<u8>, length: jint) -> Vec<u8> {
    array.truncate(usize::try_from(length).unwrap_or(0));
    array
}

/// One `T` from the whole of `bytes`.
fn read<T: Lift<UniFfiTag>>(bytes: &[u8]) -> Result<T, CourierError> {
    let mut buf = bytes;
    let value = lift(&mut buf)?;
    finished(buf)?;
    Ok(value)
}

fn lift<T: Lift<UniFfiTag>>(buf: &mut &[u8]) -> Result<T, CourierError> {
    T::try_read(buf).map_err(|e| CourierError::Internal {
        detail: format!("arguments from the JVM could not be read: {e}"),
    })
}

fn finished(rest: &[u8]) -> Result<(), CourierError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(CourierError::Internal {
            detail: format!(
                "{} bytes left over in the arguments from the JVM",
                rest.len()
            ),
        })
    }
}

/// Spawns `op` under a new cancel token, settles `pending` with its outcome on the core
/// worker that finished it, and returns the caller's share of the token; throws
/// `IllegalStateException` (starting nothing) when the runtime cannot start.
fn start<T>(
    env: &mut Env<'_>,
    pending: Global<JObject<'static>>,
    op: impl Future<Output = Result<T, CourierError>> + Send + 'static,
) -> jni::errors::Result<jlong>
where
    T: Lower<UniFfiTag> + Send + 'static,
{
    let token = Arc::new(runtime::CancelToken::new());
    let ours = token.clone();
    // `op`'s own errors ride inside the core result, so a cancel (`Closed`) and a panic
    // (`Internal`) from the runtime reach Kotlin as the same `CourierError`.
    let task = runtime::spawn_settled(
        async move {
            ours.run("operation (its coroutine was cancelled)", async move {
                Ok(op.await)
            })
            .await
        },
        move |outcome| settle(&pending, outcome.unwrap_or_else(|e| Err(e.into()))),
    );
    match task {
        Ok(task) => {
            drop(task.detach());
            Ok(Arc::into_raw(token) as usize as jlong)
        }
        Err(e) => {
            env.throw_new(
                jni_str!("java/lang/IllegalStateException"),
                JNIString::from(e.to_string()),
            )?;
            Ok(0)
        }
    }
}

/// Settles `pending` (a `JniCalls.Pending`) with `outcome`, serialized as uniffi would.
///
/// Runs on a core worker, which stays attached to the JVM as a daemon ([`attached`]).
/// `JniCalls.settle` catches everything it could throw, so the only failure left is the
/// JVM refusing the result array (out of memory): settle then gets none, and Kotlin
/// raises `InternalException` rather than leave the coroutine waiting.
fn settle<T: Lower<UniFfiTag>>(
    pending: &Global<JObject<'static>>,
    outcome: Result<T, CourierError>,
) {
    let mut bytes = Vec::new();
    let ok = match outcome {
        Ok(value) => {
            T::write(value, &mut bytes);
            true
        }
        Err(e) => {
            <CourierError as Lower<UniFfiTag>>::write(e, &mut bytes);
            false
        }
    };
    let (Some(settler), Ok(vm)) = (SETTLER.get(), JavaVM::singleton()) else {
        return;
    };
    if !attached(&vm) {
        return;
    }
    let _ = vm.attach_current_thread(|env| -> jni::errors::Result<()> {
        let array = match env.byte_array_from_slice(&bytes) {
            Ok(array) => array.into_raw(),
            Err(_) => {
                env.exception_clear();
                std::ptr::null_mut()
            }
        };
        let args = [
            jvalue {
                l: pending.as_raw(),
            },
            jvalue { z: ok },
            jvalue { l: array },
        ];
        // SAFETY: `method` is `settle(Object, boolean, byte[])` of `class`, looked up by
        // `register`, and `args` match it.
        unsafe {
            env.call_static_method_unchecked(
                &settler.class,
                settler.method,
                ReturnType::Primitive(Primitive::Void),
                &args,
            )
        }?;
        Ok(())
    });
}

thread_local! {
    /// Whether this thread attached itself to the JVM (and so detaches when it exits).
    static ATTACHED: Attachment = const { Attachment(Cell::new(None)) };
}

/// A core worker's attachment to the JVM, made on its first completion.
struct Attachment(Cell<Option<*mut sys::JavaVM>>);

/// Attaches this thread to the JVM as a daemon, once: a daemon so that it never keeps
/// the JVM from exiting (jni's own attach makes a non-daemon thread), and for the
/// thread's life, so that no completion pays for attaching (issue 15's profile: one new
/// `java.lang.Thread` per operation when JNA attached and detached per callback). A
/// thread JNA attached already (NativeThreads.kt) is left as it is.
fn attached(vm: &JavaVM) -> bool {
    ATTACHED.with(|attachment| {
        if attachment.0.get().is_some() {
            return true;
        }
        let raw = vm.get_raw();
        let mut env: *mut c_void = std::ptr::null_mut();
        // SAFETY: `raw` is the JVM jni's singleton holds; GetEnv and
        // AttachCurrentThreadAsDaemon may be called from any native thread.
        unsafe {
            if ((**raw).v1_2.GetEnv)(raw, &mut env, sys::JNI_VERSION_1_4) == sys::JNI_OK {
                return true;
            }
            let mut args = sys::JavaVMAttachArgs {
                version: sys::JNI_VERSION_1_4,
                name: c"courier-worker".as_ptr().cast_mut(),
                group: std::ptr::null_mut(),
            };
            let code =
                ((**raw).v1_4.AttachCurrentThreadAsDaemon)(raw, &mut env, (&raw mut args).cast());
            if code != sys::JNI_OK {
                return false;
            }
        }
        attachment.0.set(Some(raw));
        true
    })
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Some(raw) = self.0.get() {
            // SAFETY: this thread attached itself through `raw` and is exiting.
            unsafe { ((**raw).v1_1.DetachCurrentThread)(raw) };
        }
    }
}
