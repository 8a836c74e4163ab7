from dspy_meta.runtime.subclass import SubclassFactory


class Greeter:
    def __init__(self, name):
        self.name = name

    def greet(self):
        return f"hello {self.name}"


def test_copy_gets_the_subclass_and_the_original_is_untouched():
    loud = SubclassFactory(lambda base: {"greet": lambda self: base.greet(self).upper()})
    original = Greeter("ada")
    wrapped = loud.copy_of(original)
    assert wrapped.greet() == "HELLO ADA" and original.greet() == "hello ada"
    assert isinstance(wrapped, Greeter) and type(original) is Greeter
    assert loud.wraps(wrapped) and not loud.wraps(original)
    again = loud.copy_of(wrapped)  # wrapping twice does not stack subclasses
    assert type(again) is type(wrapped) and again.greet() == "HELLO ADA"


class Decorating:
    """Re-decorates an inherited method on every subclass, as DSPy's Adapter does with format/parse."""

    wrapped_times = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inner = cls.greet

        def greet(self):
            Decorating.wrapped_times += 1
            return inner(self)
        cls.greet = greet

    def greet(self):
        return "hi"

    def other(self):
        return "other"


class Decorated(Decorating):
    pass


def test_methods_redecorated_by_init_subclass_run_once_as_in_the_base():
    polite = SubclassFactory(lambda base: {"other": lambda self: base.other(self) + "!"})
    wrapped = polite.copy_of(Decorated())
    Decorating.wrapped_times = 0
    assert wrapped.greet() == "hi" and wrapped.other() == "other!"
    assert Decorating.wrapped_times == 1  # the base's decoration once, not once more for our subclass


def test_what_a_metaclass_records_for_the_subclass_is_kept():
    import abc

    class Base(abc.ABC):
        @abc.abstractmethod
        def run(self):
            ...

    class Concrete(Base):
        def run(self):
            return "ran"

    loud = SubclassFactory(lambda base: {"run": lambda self: base.run(self).upper()})
    wrapped = loud.copy_of(Concrete())
    issubclass(Concrete, Concrete)  # primes Concrete's ABC cache
    assert wrapped.run() == "RAN" and isinstance(wrapped, Base)
    # the subclass keeps its own ABC cache: it does not answer with Concrete's
    assert not issubclass(Concrete, type(wrapped)) and not isinstance(Concrete(), type(wrapped))
